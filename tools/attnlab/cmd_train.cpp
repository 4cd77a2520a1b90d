// attnlab train FILE.yaml [key.path=value ...]: train from an experiment config (pretrain, sft,
// kv_only), printing the resolved config first. Config problems exit 2 with FILE:LINE:COLUMN;
// any other failure exits 1; a run stopped by SIGINT/SIGTERM saves a checkpoint and exits 3
// (exit_codes.h), so a requeue wrapper can tell it from a finished run.
#include <cstdio>
#include <string>
#include <vector>

#include "core/config/buildable.h"
#include "core/config/experiment.h"
#include "core/config/printer.h"
#include "train/trainer.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
namespace {

struct TrainOptions {
  std::string file;
  std::vector<std::string> overrides;
  bool quiet_config = false;
  bool continue_changed = false;
};

void run_train(const TrainOptions& o) {
  config::ExperimentConfig cfg;
  try {
    // What validate accepts (the schema, the rules and the model's buildability), before any work.
    cfg = config::load_runnable_experiment(o.file, o.overrides);
  } catch (const config::ConfigError& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "%s\n", p.text().c_str());
    std::fprintf(stderr, "attnlab: %zu problem%s in %s; `attnlab config fields` lists every field\n",
                 e.problems().size(), e.problems().size() == 1 ? "" : "s", o.file.c_str());
    exit_with(kExitBadInput);
  }
  if (!o.quiet_config) {
    std::fputs(config::print_resolved(cfg.resolved).c_str(), stdout);
    std::fputs("\n", stdout);
  }
  std::fflush(stdout);
  train::TrainerOptions topt;
  topt.continue_changed = o.continue_changed;
  train::Trainer trainer(cfg, topt);
  const train::TrainResult res = trainer.run();
  if (res.interrupted) exit_with(kExitStopped);
}

void setup(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  auto* c = root.add_subcommand("train", "Train a model from an experiment YAML (pretrain, sft, kv_only)");
  c->footer(
      "An experiment file has these sections (all but task, run.name, model.from and data.path have defaults):\n"
      "  task        pretrain | sft | kv_only (only the k_proj/v_proj weights train)\n"
      "  run         name (the run folder is out_dir/name), out_dir, seed, device (auto|cpu|cuda), dtype (f32|bf16)\n"
      "  model       from (an HF folder, init:gpt2|qwen2|qwen3 for random weights, or init:decoder_paper|\n"
      "              decoder_seed for the from-scratch decoders of the differential study), arch (config.json\n"
      "              overrides), attention (variant, norm, ...)\n"
      "  data        format, path (\"assets:text/sotu\" reads the asset cache), tokenizer, seq_len, sft_format,\n"
      "              loss_on, val_fraction\n"
      "  train       micro_batch, grad_accum, steps or epochs, max_tokens, trainable, max_bad_steps\n"
      "  optim       lr, weight_decay, betas, eps, grad_clip, no_decay     schedule: kind, warmup_steps, min_lr_ratio\n"
      "  eval        every_steps or every_epochs, batches, best_metric    checkpoint: every_steps, keep_last, resume\n"
      "  log         every_steps, metrics_file, progress                  profile: steps [a, b), nvtx\n"
      "  distributed backend, zero1, bucket_mb\n"
      "  analysis    study: answer_to_noise runs the needle analysis while a from-scratch decoder trains\n"
      "              (every_epochs / every_steps, depths, samples; results in <run folder>/needle.jsonl);\n"
      "              analysis.study=none switches it off\n"
      "`attnlab config fields` lists every field with its default, range and meaning; `attnlab validate FILE`\n"
      "checks a file without running it. Examples live in experiments/ (start with quickstart.yaml).\n"
      "\n"
      "The run folder gets config.yaml (the resolved config), metrics.jsonl (one JSON object per logged step\n"
      "and per evaluation), checkpoints/step_N (HF weights, or a from-scratch decoder's model.safetensors;\n"
      "optimizer and trainer state; complete when DONE exists), checkpoints/best (lowest validation loss) and\n"
      "shards/ (the tokenised data, reused).\n"
      "Running the same command again resumes from the latest complete checkpoint (checkpoint.resume: auto);\n"
      "a resume whose config differs in more than run length (train.steps/epochs/max_tokens) and reporting\n"
      "(log, eval cadence, checkpoint, profile, distributed) is refused, naming the differences: choose another\n"
      "run.name, or pass --continue-changed.\n"
      "Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves a checkpoint and exits with status 3\n"
      "(0: the run finished; 1: a runtime failure; 2: a config problem, nothing run).\n"
      "Examples:\n"
      "  attnlab train experiments/quickstart.yaml\n"
      "  attnlab train experiments/quickstart.yaml train.steps=50 optim.lr=1e-3 run.name=try2\n"
      "  attnlab train experiments/diff-vs-standard/differential.yaml");
  c->add_option("file", o->file, "experiment YAML file")->required();
  c->add_option("overrides", o->overrides, "key.path=value overrides, applied after the file (e.g. optim.lr=1e-4)");
  c->add_flag("--quiet-config", o->quiet_config, "do not print the resolved config first");
  c->add_flag("--continue-changed", o->continue_changed,
              "resume the run folder's checkpoint even though this config differs from the saved run's in more "
              "than run length and logging (the differences are printed)");
  c->callback([o] { run_train(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
