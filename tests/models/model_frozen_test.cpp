// Trainable sets: KV-only fine-tuning (METHODS §2.6) leaves every other gradient undefined (no
// memory, no weight-gradient GEMM) and gives exactly the k/v gradients of full training; patterns
// are fnmatch globs over the HF names; the attention variant registry picks layers by name.
#include "core/layers/attention_layer.h"
#include "core/layers/standard_attention.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct StepResult {
  std::map<std::string, std::vector<double>> grads;
  double loss = 0;
};

StepResult train_step(Model& m, Ctx& ctx, const TokenBatch& tb, int64_t B, int64_t T) {
  m.plan(ctx, B, T);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.params().zero_grads(ctx);
  StepResult r;
  r.loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
  m.backward(ctx);
  r.grads = read_grads(ctx, m);
  return r;
}

TEST(ModelFrozen, KvOnlyGradientsEqualFullTrainingAndTheRestIsUndefined) {
  Ctx& ctx = cpu_ctx();
  for (ModelArch arch : {ModelArch::qwen3, ModelArch::qwen2}) {
    Model m(tiny_config(arch, true), {Device::cpu, DType::f64}, ctx);
    randomize_params(m, ctx, 17);
    const int64_t B = 2, T = 6;
    TokenBatch tb = random_batch(B, T, m.config().vocab_size, 3);
    StepResult full = train_step(m, ctx, tb, B, T);

    m.params().set_trainable(ctx, {"*.k_proj.*", "*.v_proj.*"});
    int64_t expected = 0;
    for (const Param& p : m.params()) {
      const bool kv = p.name.find(".k_proj.") != std::string::npos || p.name.find(".v_proj.") != std::string::npos;
      EXPECT_EQ(p.trainable, kv) << p.name;
      EXPECT_EQ(p.grad.defined(), kv) << p.name;
      if (kv) expected += p.numel();
    }
    EXPECT_EQ(m.params().trainable_numel(), expected);
    // Qwen2: weight and bias of k and v in each of 2 layers; Qwen3 has no biases (and its k_norm stays frozen).
    StepResult kv = train_step(m, ctx, tb, B, T);
    EXPECT_EQ(kv.grads.size(), arch == ModelArch::qwen2 ? 8u : 4u);
    EXPECT_EQ(kv.loss, full.loss);
    for (const auto& [name, g] : kv.grads) EXPECT_EQ(g, full.grads.at(name)) << name;
  }
}

TEST(ModelFrozen, Gpt2FusedProjectionIsOneParameter) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(ModelArch::gpt2, true), {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 4);
  const int64_t B = 1, T = 7;
  TokenBatch tb = random_batch(B, T, m.config().vocab_size, 5);
  StepResult full = train_step(m, ctx, tb, B, T);
  m.params().set_trainable(ctx, {"transformer.h.1.attn.c_attn.*"});
  StepResult part = train_step(m, ctx, tb, B, T);
  ASSERT_EQ(part.grads.size(), 2u);
  for (const auto& [name, g] : part.grads) EXPECT_EQ(g, full.grads.at(name)) << name;
  // Back to everything trainable: every gradient again, equal to the first run.
  m.params().set_all_trainable(ctx);
  StepResult again = train_step(m, ctx, tb, B, T);
  EXPECT_EQ(again.grads, full.grads);
}

TEST(ModelFrozen, GradientsAccumulateAcrossMicroSteps) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(ModelArch::qwen2, false), {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 6);
  const int64_t B = 1, T = 5;
  TokenBatch tb = random_batch(B, T, m.config().vocab_size, 2);
  StepResult once = train_step(m, ctx, tb, B, T);
  Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids), targets = make_ids(Device::cpu, {B, T}, tb.targets);
  m.forward(ctx, ids, targets, double(tb.valid));
  m.backward(ctx);  // no zeroing: the second backward adds
  for (const auto& [name, g] : read_grads(ctx, m)) {
    std::vector<double> twice = once.grads.at(name);
    for (double& x : twice) x *= 2;
    EXPECT_LT(rel_err(g, twice), 1e-14) << name;
  }
}

TEST(ModelFrozen, PatternsAreGlobsAndTyposAreErrors) {
  EXPECT_TRUE(name_matches("*.k_proj.*", "model.layers.12.self_attn.k_proj.weight"));
  EXPECT_FALSE(name_matches("*.k_proj.*", "model.layers.12.self_attn.q_proj.weight"));
  EXPECT_TRUE(name_matches("model.layers.1?.*", "model.layers.12.mlp.up_proj.weight"));
  EXPECT_FALSE(name_matches("model.layers.1?.*", "model.layers.1.mlp.up_proj.weight"));
  EXPECT_TRUE(name_matches("*norm*", "model.norm.weight"));
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(ModelArch::qwen3, false), {Device::cpu, DType::f32}, ctx);
  const std::string msg = error_of([&] { m.params().set_trainable(ctx, {"*.q_proj.*", "*.kv_proj.*"}); });
  EXPECT_NE(msg.find("'*.kv_proj.*'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("'*.q_proj.*'"), std::string::npos) << msg;  // it matches: not reported
  EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos) << msg;
}

TEST(AttentionRegistry, UnknownVariantListsTheRegisteredOnes) {
  Ctx& ctx = cpu_ctx();
  ModelConfig c = tiny_config(ModelArch::qwen2, true);
  c.attnlab = nlohmann::ordered_json::parse(R"({"attention": {"variant": "diferential"}})");
  const std::string msg = error_of([&] { Model m(c, {Device::cpu, DType::f32}, ctx); });
  EXPECT_NE(msg.find("'diferential'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("standard"), std::string::npos) << msg;
  EXPECT_NE(msg.find(c.source), std::string::npos) << msg;

  c.attnlab = nlohmann::ordered_json::parse(R"({"attention": {"variant": "standard", "lambda_init": 0.8}})");
  const std::string msg2 = error_of([&] { Model m(c, {Device::cpu, DType::f32}, ctx); });
  EXPECT_NE(msg2.find("lambda_init"), std::string::npos) << msg2;
}

// A registered variant replaces every attention layer: here one that counts its forwards around
// the standard layer (a stand-in for the differential and two-pass layers that register later).
// (The shell's forward is final: the counter wraps the standard layer instead of deriving from it.)
class CountingAttention : public AttentionLayer {
 public:
  explicit CountingAttention(const AttentionLayerArgs& a) : inner_(a) {}
  const std::string& name() const override { return inner_.name(); }
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) override {
    inner_.plan(p, ctx, dt, B, T);
  }
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y) override {
    ++forwards;
    inner_.forward(ctx, x, y);
  }
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) override {
    inner_.backward(ctx, dy, x, dx);
  }
  static inline int forwards = 0;

 private:
  StandardAttention inner_;
};

TEST(AttentionRegistry, ConfigSelectsARegisteredVariant) {
  static bool registered = false;
  if (!registered) {
    register_attention_variant("test_counting", [](const AttentionLayerArgs& a) {
      return std::unique_ptr<AttentionLayer>(new CountingAttention(a));
    });
    registered = true;
  }
  const auto names = attention_variant_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "test_counting"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "standard"), names.end());
  EXPECT_NE(error_of([] { register_attention_variant("standard", make_standard_attention); }).find("twice"),
            std::string::npos);

  Ctx& ctx = cpu_ctx();
  ModelConfig c = tiny_config(ModelArch::qwen3, false);
  Model plain(c, {Device::cpu, DType::f64}, ctx);
  randomize_params(plain, ctx, 1);
  c.attnlab = nlohmann::ordered_json::parse(R"({"attention": {"variant": "test_counting"}})");
  Model counted(c, {Device::cpu, DType::f64}, ctx);
  copy_params(ctx, plain, ctx, counted);
  const int64_t B = 1, T = 4;
  TokenBatch tb = random_batch(B, T, c.vocab_size, 1);
  CountingAttention::forwards = 0;
  StepResult a = train_step(plain, ctx, tb, B, T);
  EXPECT_EQ(CountingAttention::forwards, 0);
  StepResult b = train_step(counted, ctx, tb, B, T);
  EXPECT_EQ(CountingAttention::forwards, int(c.num_layers));
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.grads, b.grads);
}

}  // namespace
}  // namespace attnlab::test
