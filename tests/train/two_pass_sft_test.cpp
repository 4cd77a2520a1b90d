// The two-pass study's training (METHODS §1.5–1.6) on a stand-in: a few SFT steps of a tiny
// Qwen2-shaped folder with the gates added (the whole model trains), the gated run's first loss
// equal to the plain twin's (fresh gates are the identity), and the per-gate gradient norms in
// metrics.jsonl (log.grad_norms).
#include <cmath>

#include "train/metrics.h"
#include "train/model_setup.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

config::ExperimentConfig sft_experiment(const std::string& out_dir, const std::string& name, const std::string& folder,
                                        std::vector<std::string> extra) {
  std::vector<std::string> o = kSftOverrides;
  o.insert(o.end(), {"train.steps=3", "train.grad_accum=2", "train.micro_batch=2", "data.seq_len=24"});
  o.insert(o.end(), extra.begin(), extra.end());
  return tiny_experiment(out_dir, name, o, "model: {from: " + folder + "}\n");
}

TEST(TwoPassSft, GatedRunStartsAtThePlainLossTrainsEverythingAndLogsGateGradNorms) {
  ScratchDir d;
  write_tiny_qwen(d / "model", ModelArch::qwen2, 32);
  auto data = synthetic_sft_data(d / "shards", 40, 32, 24);

  train::Trainer plain(sft_experiment(d.path, "plain", d / "model", {}), quiet_options(data));
  const train::TrainResult pr = plain.run();

  train::Trainer gated(sft_experiment(d.path, "gated", d / "model",
                                      {"model.attention.variant=two_pass", "log.grad_norms=[\"*attn.gate_*\"]"}),
                       quiet_options(data));
  const auto before = param_values(gated.ctx(), gated.model());
  int gate_tensors = 0;
  for (const auto& [name, v] : before) gate_tensors += name.find("attn.gate_") != std::string::npos;
  EXPECT_EQ(gate_tensors, 2 * 3 * 4);  // 2 layers x gates q, k, v x fc1/fc2 weight/bias
  const train::TrainResult gr = gated.run();

  // Fresh gates: adj = 0, so the first step's loss is the plain model's exactly.
  EXPECT_EQ(gr.first_loss, pr.first_loss);
  EXPECT_NE(gr.last_loss, pr.last_loss) << "the gates change the training once they move";
  // METHODS §1.5: nothing frozen — every tensor moved (embedding, projections, norms, the gates).
  const auto after = param_values(gated.ctx(), gated.model());
  for (const auto& [name, v] : before) EXPECT_NE(v, after.at(name)) << name << " did not train";

  const auto records = train::read_metrics(d / "gated/metrics.jsonl");
  int train_records = 0;
  for (const auto& r : records) {
    if (r["kind"] != "train") continue;
    ++train_records;
    int norms = 0;
    for (const auto& [key, value] : r.items()) {
      if (key.rfind("grads_norm/", 0) != 0) continue;
      ++norms;
      EXPECT_NE(key.find("attn.gate_"), std::string::npos) << key << ": only the globbed tensors";
      EXPECT_TRUE(std::isfinite(value.get<double>())) << key;
      // fc2 starts at zero, so fc1's gradient (through fc2) is exactly 0 until fc2 has moved: step 1
      // runs at lr 0 (warmup from 0), step 2 is fc2's first update, so fc1's gradient is live from step 3.
      const bool fc1 = key.find(".fc1.") != std::string::npos;
      if (!fc1 || r["step"].get<int>() > 2) {
        EXPECT_GT(value.get<double>(), 0.0) << key << " step " << r["step"];
      } else {
        EXPECT_EQ(value.get<double>(), 0.0) << key;
      }
    }
    EXPECT_EQ(norms, gate_tensors) << "step " << r["step"];
  }
  EXPECT_EQ(train_records, 3);
  const auto plain_records = train::read_metrics(d / "plain/metrics.jsonl");
  for (const auto& r : plain_records)
    for (const auto& [key, value] : r.items()) EXPECT_NE(key.rfind("grads_norm/", 0), 0u) << "plain run logs none";
}

TEST(TwoPassSft, GradNormGlobThatMatchesNothingIsRefusedWithTheFix) {
  ScratchDir d;
  write_tiny_qwen(d / "model", ModelArch::qwen2, 32);
  auto data = synthetic_sft_data(d / "shards", 10, 32, 24);
  const std::string err = error_of([&] {
    train::Trainer t(sft_experiment(d.path, "x", d / "model", {"log.grad_norms=[\"*attn.gate_*\"]"}), quiet_options(data));
  });
  EXPECT_NE(err.find("log.grad_norms"), std::string::npos) << err;
  EXPECT_NE(err.find("matches no trainable parameter"), std::string::npos) << err;
}

}  // namespace
}  // namespace attnlab::test

namespace attnlab::test {
namespace {

// An attention option given at its default on a folder without an attnlab block (e.g.
// model.attention.controller=none on a plain HF folder) leaves the config as it is; it wrote a null
// attnlab.attention block that the config reader then refused.
TEST(ExperimentModelConfig, OptionGivenAtItsDefaultOnAPlainFolderBuilds) {
  ScratchDir d;
  write_tiny_qwen(d / "model", ModelArch::qwen2, 32);
  for (const char* o : {"model.attention.controller=none", "model.attention.variant=standard"}) {
    SCOPED_TRACE(o);
    const auto cfg = sft_experiment(d.path, "x", d / "model", {o});
    ModelConfig mc;
    ASSERT_NO_THROW(mc = train::experiment_model_config(cfg));
    EXPECT_TRUE(mc.attnlab.is_null() || !mc.attnlab.contains("attention") || mc.attnlab["attention"].is_object());
  }
}

}  // namespace
}  // namespace attnlab::test
