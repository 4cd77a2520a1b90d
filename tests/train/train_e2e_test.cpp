// End to end on the CPU: text written here, a byte-level tokenizer written here, the whole data
// pipeline (prepare_data through the trainer), and a validation loss that falls by a set margin;
// plus the run folder it leaves (config, metrics, checkpoints an HF loader reads) and the CLI's
// answer to a broken config.

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/config/printer.h"
#include "train/metrics.h"
#include "support/subprocess.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

// Sentences from a small grammar, seeded: learnable in a few dozen steps.
std::string small_english(int sentences, uint64_t seed) {
  static const char* subjects[] = {"the cat", "a dog", "my friend", "the old man", "our teacher", "the bird"};
  static const char* verbs[] = {"sees", "likes", "finds", "follows", "calls"};
  static const char* objects[] = {"the ball", "a red house", "the river", "some bread", "the garden"};
  const auto pick = rand_ints(size_t(3 * sentences), 0, 1 << 20, seed);
  std::string s;
  for (int i = 0; i < sentences; ++i) {
    s += subjects[pick[size_t(3 * i)] % 6];
    s += " ";
    s += verbs[pick[size_t(3 * i + 1)] % 5];
    s += " ";
    s += objects[pick[size_t(3 * i + 2)] % 5];
    s += ". ";
  }
  return s;
}

TEST(TrainEndToEnd, ValidationLossFallsOnTextThroughTheWholePipeline) {
  ScratchDir d;
  make_byte_tokenizer(d / "tok");
  for (int f = 0; f < 12; ++f) write_text(d / ("corpus/doc" + std::to_string(f) + ".txt"), small_english(40, 100 + f));
  const std::string yaml =
      "task: pretrain\n"
      "run: {name: e2e, out_dir: " + d.path + "/runs, seed: 3, device: cpu}\n"
      "model:\n"
      "  from: init:gpt2\n"
      "  arch: {n_layer: 2, n_embd: 32, n_head: 2, n_positions: 32, vocab_size: 258, embd_pdrop: 0.0, resid_pdrop: 0.0}\n"
      "data: {format: text, path: " + d.path + "/corpus, tokenizer: " + d.path + "/tok, seq_len: 32, val_fraction: 0.2}\n"
      "train: {micro_batch: 8, steps: 60}\n"
      "optim: {lr: 1.0e-2, weight_decay: 0.0}\n"
      "schedule: {kind: cosine, warmup_steps: 5}\n"
      "eval: {every_steps: 20, batches: 4, best_metric: val_loss}\n"
      "checkpoint: {every_steps: 20, keep_last: 1}\n"
      "log: {every_steps: 10, progress: false}\n";
  const config::ExperimentConfig cfg = config::load_experiment_text(yaml, "e2e.yaml");
  train::TrainerOptions opt;
  opt.console = nullptr;
  train::Trainer t(cfg, opt);
  const double initial = t.evaluate();
  EXPECT_NEAR(initial, std::log(258.0), 0.3);  // random weights: close to uniform over the vocabulary
  const train::TrainResult r = t.run();
  ASSERT_TRUE(r.last_val_loss);
  std::printf("validation loss %.3f -> %.3f after %lld steps\n", initial, *r.last_val_loss, (long long)r.steps_done);
  EXPECT_LT(*r.last_val_loss, initial - 2.0);
  EXPECT_LE(*r.best_val_loss, *r.last_val_loss);

  const std::string run = d.path + "/runs/e2e";
  // The resolved config loads again and is the one that ran.
  const config::ExperimentConfig again = config::load_experiment(run + "/config.yaml");
  EXPECT_EQ(config::config_hash_hex(again.resolved), config::config_hash_hex(cfg.resolved));
  // metrics.jsonl: train records at steps 1, 10, ..., 60 with every field; evaluations at 20, 40, 60.
  int train_records = 0, eval_records = 0;
  for (const nlohmann::json& j : train::read_metrics(run + "/metrics.jsonl")) {
    if (j["kind"] == "train") {
      ++train_records;
      for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s"})
        EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
      EXPECT_EQ(j["tokens"].get<int64_t>(), j["step"].get<int64_t>() * 8 * 32);
    } else {
      ++eval_records;
      EXPECT_EQ(j["kind"], "eval");
      EXPECT_TRUE(j["val_loss"].is_number());
    }
  }
  EXPECT_EQ(train_records, 7);
  EXPECT_EQ(eval_records, 3);
  // keep_last 1: only the final step checkpoint, plus the best one; both open as HF folders.
  const auto kept = train::list_checkpoints(run + "/checkpoints");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].step, 60);
  Ctx& ctx = cpu_ctx();
  for (const std::string& folder : {kept[0].path, run + "/checkpoints/best"}) {
    auto loaded = load_model(folder, {Device::cpu, DType::f32, false}, ctx);
    EXPECT_EQ(loaded->config().vocab_size, 258);
  }
  auto final_weights = load_model(kept[0].path, {Device::cpu, DType::f32, false}, ctx);
  EXPECT_EQ(param_values(ctx, *final_weights), param_values(t.ctx(), t.model()));
}

std::string attnlab_binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

TEST(TrainCli, ConfigErrorExitsNonZeroWithFileLineColumn) {
  if (!fs::exists(attnlab_binary())) GTEST_SKIP() << "the attnlab binary is not built (" << attnlab_binary() << ")";
  ScratchDir d;
  const std::string path = d / "broken.yaml";
  // Line 4 column 7: the value of optim.lr.
  write_text(path, "task: pretrain\nrun: {name: x}\noptim:\n  lr: fast\nmodel: {from: init:gpt2}\ndata: {path: x}\n"
                   "train: {steps: 3}\n");
  std::string out;
  const int code = run_command(attnlab_binary() + " train " + path, out);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(path + ":4:7:"), std::string::npos) << out;
  // A valid config whose data is missing: a runtime error, exit 1, naming the path.
  write_text(path, "task: pretrain\nrun: {name: x, out_dir: " + d.path + "/runs, device: cpu}\nmodel: {from: init:gpt2}\n"
                   "data: {path: " + d.path + "/no-such-corpus}\ntrain: {steps: 3}\n");
  EXPECT_EQ(run_command(attnlab_binary() + " train --quiet-config " + path, out), 1) << out;
  EXPECT_NE(out.find("no-such-corpus"), std::string::npos) << out;
  EXPECT_EQ(run_command(attnlab_binary() + " train --help", out), 0) << out;
  EXPECT_NE(out.find("attnlab config fields"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
