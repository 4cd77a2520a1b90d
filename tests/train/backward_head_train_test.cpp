// The backward attention head in training (METHODS §5.5): selected from YAML (model.head,
// model.backward_head.*) on a frozen GPT-2 loaded from a plain folder, only its parameters train,
// every GPT-2 tensor stays bit for bit, and the saved folder reloads with the head.
#include "core/models/weights.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

bool is_head(const std::string& name) { return name.rfind("backward_head.", 0) == 0; }

// A tiny plain GPT-2 folder (vocab 32, 2 layers of width 32), as any HF GPT-2 folder: no head block.
void write_tiny_gpt2(const std::string& folder) {
  ModelConfig c = model_config_defaults(ModelArch::gpt2);
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 128;
  c.vocab_size = 32;
  c.max_position_embeddings = 32;
  c.tie_word_embeddings = true;
  c.source = "tiny gpt2 for the backward head";
  c.raw["resid_pdrop"] = 0.1;  // dropout in the config: a frozen trunk must still not move
  Ctx& ctx = cpu_ctx();
  Model m(c, {Device::cpu, DType::f32, false}, ctx);
  init_weights(m, ctx, 5);
  save_model(m, ctx, folder);
}

config::ExperimentConfig head_experiment(const std::string& out, const std::string& folder,
                                         std::vector<std::string> extra) {
  std::vector<std::string> o = kSftOverrides;
  o.insert(o.end(), {"model.head=backward_head", "train.trainable=[backward_head.*]", "train.steps=4"});
  o.insert(o.end(), extra.begin(), extra.end());
  return tiny_experiment(out, "bh", o, "model: {from: " + folder + "}\n");
}

TEST(BackwardHeadTrain, OnlyTheHeadTrainsAndEveryGpt2TensorIsBitIdentical) {
  ScratchDir d;
  write_tiny_gpt2(d / "gpt2");
  auto data = synthetic_sft_data(d / "shards", 40, 32, 16);
  train::Trainer t(head_experiment(d.path, d / "gpt2", {"model.backward_head.heads=2"}), quiet_options(data));
  const auto before = param_values(t.ctx(), t.model());
  int64_t head_numel = 0, head_tensors = 0;
  for (const Param& p : t.model().params())
    if (is_head(p.name)) {
      head_numel += p.numel();
      ++head_tensors;
      EXPECT_TRUE(p.init.added) << p.name;
    }
  EXPECT_EQ(head_tensors, 6);  // embed_norm, k_proj, v_proj, q_norm, q_proj, beta (no latent)
  EXPECT_EQ(t.trainable_numel(), head_numel);
  t.run();
  const auto after = param_values(t.ctx(), t.model());
  for (const auto& [name, values] : before) {
    if (is_head(name)) EXPECT_NE(values, after.at(name)) << name << " should have trained";
    else EXPECT_EQ(values, after.at(name)) << name << " is GPT-2's and frozen, but changed";
  }
  // The saved folder records the head and reloads it with the trained values.
  t.model().save_weights(t.ctx(), d / "saved");
  Ctx& ctx = cpu_ctx();
  auto back = load_model(d / "saved", {Device::cpu, DType::f32, false}, ctx);
  EXPECT_EQ(back->head().name(), "backward_head");
  EXPECT_EQ(back->config().attnlab["head"]["heads"], 2);
  for (const auto& [name, values] : after) EXPECT_EQ(to_host_f64(ctx, back->params().at(name).value), values) << name;
}

TEST(BackwardHeadTrain, UntiedLmHeadBaselineStartsAsTheEmbeddingAndTrainsAlone) {
  ScratchDir d;
  write_tiny_gpt2(d / "gpt2");
  auto data = synthetic_sft_data(d / "shards", 40, 32, 16);
  auto cfg = tiny_experiment(d.path, "lmh",
                             {"task=sft", "data.sft_format=gsm8k", "data.format=jsonl", "data.loss_on=assistant",
                              "model.head=lm_head_untied", "train.trainable=[lm_head.weight]", "train.steps=3"},
                             "model: {from: " + (d / "gpt2") + "}\n");
  train::Trainer t(cfg, quiet_options(data));
  const auto before = param_values(t.ctx(), t.model());
  ASSERT_TRUE(before.count("lm_head.weight"));
  EXPECT_EQ(before.at("lm_head.weight"), before.at("transformer.wte.weight"));  // the copy rule
  t.run();
  const auto after = param_values(t.ctx(), t.model());
  for (const auto& [name, values] : before) {
    if (name == "lm_head.weight") EXPECT_NE(values, after.at(name));
    else EXPECT_EQ(values, after.at(name)) << name;
  }
}

// The study's experiment files load and say what their runs are (attnlab validate checks them all in
// DocumentedCommands.ExperimentFilesValidate; this pins the head and trainable set of each).
TEST(BackwardHeadTrain, ExperimentFilesSelectTheirHeadsAndTrainableSets) {
  const std::string dir = std::string(ATTNLAB_SOURCE_DIR) + "/experiments/backward-head/";
  struct Want {
    const char* file;
    const char* head;
    std::vector<std::string> trainable;
    double lr;
  };
  for (const Want& w : {Want{"head.yaml", "backward_head", {"backward_head.*"}, 5e-4},
                        Want{"lmhead-ft.yaml", "lm_head_untied", {"lm_head.weight"}, 5e-4},
                        Want{"full-ft.yaml", "lm_head", {}, 5e-5}, Want{"zero-shot.yaml", "lm_head", {}, 5e-4}}) {
    const config::ExperimentConfig cfg = config::load_experiment(dir + w.file);
    EXPECT_EQ(cfg.model.head, w.head) << w.file;
    EXPECT_EQ(cfg.train.trainable.value_or(std::vector<std::string>{}), w.trainable) << w.file;
    EXPECT_DOUBLE_EQ(cfg.optim.lr, w.lr) << w.file;
    EXPECT_TRUE(cfg.task == config::Task::sft) << w.file;
    EXPECT_TRUE(cfg.data.sft_format == config::SftFormat::openmath) << w.file;
    EXPECT_TRUE(cfg.data.loss_on == config::LossOn::assistant) << w.file;
  }
}

}  // namespace
}  // namespace attnlab::test
