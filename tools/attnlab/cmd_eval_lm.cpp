// attnlab eval lm EXPERIMENT.yaml --model NAME=DIR [--model NAME=DIR ...] [--max-records N]
// [--max-new-tokens N] [--no-generate] [--sampling] [--out DIR] [--device cpu|cuda]: METHODS §5.8 on
// the experiment's held-out SFT records (the same seeded split the trainer holds out), for every
// model; one JSON per model and a comparison table (studies/backward_head/lm_metrics.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/config/experiment.h"
#include "core/memory.h"
#include "core/models/generate.h"
#include "core/models/weights.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "studies/backward_head/lm_metrics.h"
#include "tools/attnlab/cli_options.h"
#include "tools/attnlab/command.h"
#include "train/data_config.h"

namespace attnlab::cli {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using studies::backward_head::AnswerMetrics;
using studies::backward_head::TokenMetrics;

struct EvalLmOptions {
  std::string experiment;
  std::vector<std::string> overrides;
  std::vector<std::string> models;  // NAME=DIR
  int64_t max_records = 0;
  int64_t max_new_tokens = 512;
  int64_t batch = 8;
  bool no_generate = false;
  bool sampling = false;
  uint64_t seed = 0;
  std::string out = "runs/eval-lm";
  std::string device = "cpu";
};

struct HeldOut {
  std::vector<int32_t> ids, targets;
  int64_t prompt_len = 0;
  std::string expected;
};

std::vector<HeldOut> held_out_records(const config::ExperimentConfig& cfg, int64_t max_records, uint64_t& dropped,
                                      uint64_t& in_split) {
  INPUT_CHECK(cfg.data.sft_format.has_value(), "eval lm: '", cfg.source,
              "' has no data.sft_format; the evaluation reads SFT records (data.sft_format: openmath)");
  INPUT_CHECK(cfg.data.val_fraction > 0, "eval lm: '", cfg.source,
              "' holds nothing out (data.val_fraction is 0); set data.val_fraction so train and eval share the split");
  data::PrepareOptions prep;
  const data::PreparedData prepared = data::prepare_data(train::dataset_config(cfg), prep);
  data::LoaderOptions lo = data::loader_options(train::dataset_config(cfg));
  lo.pad_to_seq_len = false;
  lo.loss_on_targets_only = true;  // METHODS §5.8: target tokens only
  auto loader = data::make_loader(prepared, lo, data::Split::validation);
  auto* sft = dynamic_cast<data::SftLoader*>(loader.get());
  CHECK(sft, "eval lm: the held-out split is not SFT records");
  dropped = sft->dropped_too_long();
  in_split = sft->records_in_split();

  // The records themselves, for expected_answer (record i of the shards is record i of the source).
  std::vector<nlohmann::json> records;
  data::for_each_record(data::corpus_source(train::dataset_config(cfg)),
                        [&](const nlohmann::json& r, const std::string&) { records.push_back(r); });
  std::string answer_field = "expected_answer";
  if (auto it = cfg.data.fields.find("expected_answer"); it != cfg.data.fields.end()) answer_field = it->second;

  std::vector<HeldOut> out;
  data::Batch b;
  while ((max_records <= 0 || int64_t(out.size()) < max_records) && loader->next(b, 1)) {
    HeldOut h;
    const int64_t L = b.lengths[0];
    h.ids.assign(b.inputs.begin(), b.inputs.begin() + L);
    h.targets.assign(b.targets.begin(), b.targets.begin() + L);
    while (h.prompt_len < L && h.targets[size_t(h.prompt_len)] == data::kIgnoreTarget) ++h.prompt_len;
    if (h.prompt_len >= L) continue;  // no target token
    ++h.prompt_len;                   // the position that predicts the first target token is the prompt's last
    const nlohmann::json& rec = records.at(size_t(sft->record_of(b.items[0])));
    if (rec.contains(answer_field)) {
      const auto& a = rec[answer_field];
      h.expected = a.is_string() ? a.get<std::string>() : a.dump();
    }
    out.push_back(std::move(h));
  }
  INPUT_CHECK(!out.empty(), "eval lm: the held-out split of '", cfg.source, "' has no record with target tokens");
  return out;
}

TokenMetrics teacher_forcing(Model& model, Ctx& ctx, const std::vector<HeldOut>& held) {
  TokenMetrics m;
  const int64_t V = model.vocab();
  for (const HeldOut& h : held) {
    const int64_t T = int64_t(h.ids.size());
    model.plan(ctx, 1, T);
    Buffer ids(ctx.device, DType::i32, {1, T}, "eval.ids");
    std::vector<int32_t> host(h.ids);
    copy_tensor(ctx, ids, Tensor(host.data(), DType::i32, Device::cpu, {1, T}, "eval.ids.host"));
    model.forward(ctx, ids, Tensor(), 0);
    const std::vector<double> logits = model.logits_f64(ctx);  // [T, V]: logits, or the backward head's log p
    for (int64_t t = 0; t < T; ++t) {
      const int32_t y = h.targets[size_t(t)];
      if (y == data::kIgnoreTarget) continue;
      const double* row = logits.data() + t * V;
      const int64_t arg = std::max_element(row, row + V) - row;
      double lse = 0;
      for (int64_t j = 0; j < V; ++j) lse += std::exp(row[j] - row[arg]);
      m.add(y, row[y] - row[arg] - std::log(lse), int32_t(arg));
    }
  }
  return m;
}

AnswerMetrics answers(Model& model, Ctx& ctx, const std::vector<HeldOut>& held, const data::Tokenizer& tok,
                      GenerationConfig g, int64_t batch) {
  AnswerMetrics a;
  for (size_t i = 0; i < held.size(); i += size_t(batch)) {
    std::vector<std::vector<int32_t>> prompts;
    for (size_t j = i; j < std::min(held.size(), i + size_t(batch)); ++j)
      prompts.emplace_back(held[j].ids.begin(), held[j].ids.begin() + held[j].prompt_len);
    const GenerationResult r = generate(model, ctx, prompts, g, &tok);
    for (size_t j = 0; j < prompts.size(); ++j) a.add(r.texts[j], held[i + j].expected);
  }
  return a;
}

std::string fmt(const ojson& v, const char* f = "%.4f") {
  if (!v.is_number()) return "—";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v.get<double>());
  return buf;
}

void run_eval_lm(const EvalLmOptions& o) {
  const DeviceDtype dd = parse_device_dtype("eval lm", o.device, "f32");
  ARG_CHECK(!o.models.empty(), "eval lm: give at least one --model NAME=DIR");
  const config::ExperimentConfig cfg = config::load_experiment(o.experiment, o.overrides);
  uint64_t dropped = 0, in_split = 0;
  const std::vector<HeldOut> held = held_out_records(cfg, o.max_records, dropped, in_split);
  const data::Tokenizer tok = data::Tokenizer::load(cfg.data.tokenizer);
  std::printf("eval lm: %zu held-out records of '%s' (%llu in the split, %llu dropped as longer than %lld tokens)\n",
              held.size(), cfg.data.path.c_str(), (unsigned long long)in_split, (unsigned long long)dropped,
              (long long)cfg.data.seq_len);
  fs::create_directories(o.out);
  std::vector<ojson> results;
  for (const std::string& spec : o.models) {
    const size_t eq = spec.find('=');
    ARG_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), "eval lm: --model takes NAME=DIR, got '",
              spec, "'");
    const std::string name = spec.substr(0, eq), dir = spec.substr(eq + 1);
    const auto t0 = std::chrono::steady_clock::now();
    Ctx ctx = dd.device == Device::cuda ? Ctx::make_cuda(0, o.seed) : Ctx::make_cpu(o.seed);
    auto model = load_model(dir, {dd.device, dd.dtype, false}, ctx);
    ojson j;
    j["model"] = name;
    j["folder"] = dir;
    j["head"] = model->head().name();
    j["data"] = {{"path", cfg.data.path}, {"held_out_records", held.size()}, {"dropped_too_long", dropped}};
    j["teacher_forcing"] = teacher_forcing(*model, ctx, held).to_json();
    if (!o.no_generate) {
      GenerationConfig g;
      g.max_new_tokens = o.max_new_tokens;
      g.stop_tokens.assign(model->config().eos_token_ids.begin(), model->config().eos_token_ids.end());
      g.do_sample = false;
      j["generation"]["greedy"] = answers(*model, ctx, held, tok, g, o.batch).to_json();
      if (o.sampling)
        for (float temp : {0.7f, 1.0f})
          for (int64_t k : {int64_t(0), int64_t(50)}) {
            GenerationConfig s = g;
            s.do_sample = true;
            s.temperature = temp;
            s.top_k = k;
            char key[32];
            std::snprintf(key, sizeof key, "t%.1f_k%lld", double(temp), (long long)k);
            j["generation"][key] = answers(*model, ctx, held, tok, s, o.batch).to_json();
          }
    }
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string path = (fs::path(o.out) / (name + ".json")).string();
    std::ofstream(path) << j.dump(2) << "\n";
    std::printf("eval lm: %s → %s\n", name.c_str(), path.c_str());
    results.push_back(std::move(j));
  }
  // The comparison table (markdown), also printed.
  std::string table =
      "| model | head | CE | PPL | token acc | macro P | macro R | macro F1 | greedy exact | coverage | MSE | RMSE |";
  const char* grid[] = {"t0.7_k0", "t0.7_k50", "t1.0_k0", "t1.0_k50"};
  if (o.sampling)
    for (const char* k : grid) table += std::string(" exact ") + k + " |";
  table += "\n|---|---|---|---|---|---|---|---|---|---|---|---|";
  if (o.sampling) table += "---|---|---|---|";
  table += "\n";
  for (const ojson& j : results) {
    const ojson& tf = j["teacher_forcing"];
    const ojson gr = j.contains("generation") ? j["generation"]["greedy"] : ojson();
    auto g = [&](const char* k) { return gr.is_object() ? gr[k] : ojson(); };
    table += "| " + j["model"].get<std::string>() + " | " + j["head"].get<std::string>() + " | " +
             fmt(tf["cross_entropy"]) + " | " + fmt(tf["perplexity"], "%.2f") + " | " + fmt(tf["token_accuracy"]) +
             " | " + fmt(tf["macro_precision"]) + " | " + fmt(tf["macro_recall"]) + " | " + fmt(tf["macro_f1"]) +
             " | " + fmt(g("exact_match"), "%.3f") + " | " + fmt(g("coverage"), "%.3f") + " | " +
             fmt(g("mse"), "%.4g") + " | " + fmt(g("rmse"), "%.4g") + " |";
    if (o.sampling)
      for (const char* k : grid) table += " " + fmt(j["generation"][k]["exact_match"], "%.3f") + " |";
    table += "\n";
  }
  const std::string md = (fs::path(o.out) / "comparison.md").string();
  std::ofstream(md) << table;
  std::printf("\n%s\neval lm: table → %s\n", table.c_str(), md.c_str());
}

void setup(CLI::App& root) {
  auto o = std::make_shared<EvalLmOptions>();
  CLI::App& group = eval_command(root);
  auto* c = group.add_subcommand("lm", "Language-model metrics and answer accuracy on an experiment's held-out records (METHODS §5.8)");
  c->footer(
      "Reads the experiment's data section (SFT records, e.g. OpenMathInstruct-2 with data.sft_format: openmath),\n"
      "takes the same seeded held-out split the trainer holds out (data.val_fraction, run.seed), drops records\n"
      "longer than data.seq_len (counted), and for every --model NAME=DIR (an HF folder; a folder saved with the\n"
      "backward head reloads it) computes on target tokens with teacher forcing: cross-entropy, perplexity, token\n"
      "accuracy, macro precision/recall/F1 over target token ids; then greedy-generates a solution from each\n"
      "prompt with the model's own head, parses the number after \"Final answer:\" (else the last number) and\n"
      "reports MSE/RMSE against expected_answer, parse coverage and exact match. --sampling adds temperature\n"
      "{0.7, 1.0} x top-k {0, 50}. Writes OUT/NAME.json per model and OUT/comparison.md.\n"
      "The examples run on the stand-in of experiments/backward-head/ (its models trained by the commands in\n"
      "those files' headers; tools/backward_head_standin.sh runs everything).\n"
      "Examples:\n"
      "  attnlab eval lm experiments/backward-head/zero-shot.yaml --model zero-shot=runs/backward-head-standin-gpt2/checkpoints/best "
      "--max-records 4 --max-new-tokens 8 --out runs/eval-lm-example\n"
      "  attnlab eval lm experiments/backward-head/zero-shot.yaml --model head=runs/backward-head/checkpoints/best "
      "--max-records 2 --max-new-tokens 8 --sampling --out runs/eval-lm-example");
  c->add_option("experiment", o->experiment, "the experiment YAML whose data section and split to evaluate on")
      ->required();
  c->add_option("overrides", o->overrides, "key.path=value overrides of the experiment (as for attnlab train)");
  c->add_option("--model", o->models, "NAME=DIR: a model folder to evaluate under NAME (repeatable)")->required();
  c->add_option("--max-records", o->max_records, "evaluate the first N held-out records (0: all)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  c->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate per solution (default 512)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_option("--batch", o->batch, "prompts generated at once (default 8)")->check(CLI::Range(int64_t(1), int64_t(4096)));
  c->add_flag("--no-generate", o->no_generate, "teacher-forcing metrics only");
  c->add_flag("--sampling", o->sampling, "also sample at temperature {0.7, 1.0} x top-k {0, 50}");
  c->add_option("--seed", o->seed, "sampling seed (default 0)");
  c->add_option("--out", o->out, "folder for NAME.json and comparison.md (default runs/eval-lm)");
  c->add_option("--device", o->device, "cpu (default) or cuda");
  c->callback([o] { run_eval_lm(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
