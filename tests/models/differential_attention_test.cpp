// The "differential" attention layer (METHODS §3.2 paper, §3.3 seed): λ_init schedule, parameter
// layout, and whole-layer finite-difference checks in double of every parameter (λ vectors / λ'
// included) and of the input.
#include <cmath>

#include "core/layers/activations.h"
#include "core/layers/differential_attention.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

TEST(DifferentialAttention, LambdaInitMatchesThePublishedValuesForFourLayers) {
  const double published[4] = {0.2000, 0.3555, 0.4707, 0.5561};  // METHODS §3.2, L = 4
  for (int l = 0; l < 4; ++l) {
    const double from_formula = 0.8 - 0.6 * std::exp(-0.3 * l);
    EXPECT_NEAR(from_formula, published[l], 5e-5) << "layer " << l;
    EXPECT_DOUBLE_EQ(diff_lambda_init(l), from_formula) << "layer " << l;
  }
}

ModelConfig tiny_config() {
  ModelConfig c = model_config_defaults(ModelArch::qwen2);
  c.hidden_size = 8;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 2;
  c.num_layers = 3;
  c.source = "differential_attention_test";
  c.rope_theta = 0;
  return c;
}

// On a RoPE model the layer rotates each of its 2H sub-heads of dim d with the model's rotation:
// rotate-half (Qwen, with its q/k norm when the model has one) or interleaved (the from-scratch
// decoders with rope). The whole-model finite differences and the cached generation of these
// models are in model_fd_test.cpp, generate_test.cpp and scratch_decoder_test.cpp.
TEST(DifferentialAttention, TakesTheModelsRopePerSubHead) {
  const auto opts = nlohmann::ordered_json::parse(R"({"variant": "differential"})");
  for (bool interleaved : {false, true}) {
    for (bool qk_norm : {false, true}) {
      ModelConfig c = tiny_config();
      c.rope_theta = 10000;
      c.rope_interleaved = interleaved;
      c.qk_norm = qk_norm;
      ParamStore ps;
      const auto layer = make_differential_attention({c, 0, "blk.attn", ps, opts});
      const auto& shell = dynamic_cast<const AttentionShell&>(*layer);
      const ShellLayout& l = shell.layout();
      EXPECT_TRUE(l.rope);
      EXPECT_EQ(l.rope_spec.layout, interleaved ? RopeLayout::interleaved : RopeLayout::rotate_half);
      EXPECT_EQ(l.rope_spec.theta, 10000);
      EXPECT_EQ(l.rope_spec.rotary_dim, c.head_dim);  // each sub-head of dim d, not the head's 2d
      EXPECT_EQ(l.q_heads, c.num_heads);              // 2H sub-heads of the paper's H = num_heads / 2 heads
      EXPECT_EQ(l.qk_norm, qk_norm);
      EXPECT_EQ(ps.find("blk.attn.q_norm.weight") != nullptr, qk_norm);
    }
  }
  // Learned positions: nothing rotates.
  ParamStore ps;
  const auto layer = make_differential_attention({tiny_config(), 0, "blk.attn", ps, opts});
  EXPECT_FALSE(dynamic_cast<const AttentionShell&>(*layer).layout().rope);
}

struct Harness {
  ModelConfig cfg;
  nlohmann::ordered_json options;
  ParamStore params;
  std::unique_ptr<AttentionLayer> layer;
  ActivationPlanner planner{Device::cpu};
  Harness(const char* preset, int64_t layer_index, int64_t B, int64_t T) : cfg(tiny_config()) {
    options = nlohmann::ordered_json::parse(std::string("{\"variant\": \"differential\", \"preset\": \"") + preset + "\"}");
    cfg.attnlab = nlohmann::ordered_json::object();
    cfg.attnlab["attention"] = options;
    Ctx& ctx = cpu_ctx();
    layer = make_attention_layer({cfg, layer_index, "blk.attn", params, options});
    params.allocate(Device::cpu, DType::f64);
    params.allocate_grads(ctx);
    uint64_t seed = 11;
    for (Param& p : params) {
      // λ' and the λ vectors are kept small so exp(·) stays moderate; everything else O(0.5).
      const bool lam = p.name.find("lambda") != std::string::npos;
      from_host_f64(ctx, p.value, rand_uniform(size_t(p.numel()), lam ? -0.4 : -0.7, lam ? 0.4 : 0.7, seed++));
    }
    for (int pass = 0; pass < 2; ++pass) {
      pass == 0 ? planner.begin_sizing() : planner.begin_carving();
      layer->plan(planner, ctx, DType::f64, B, T);
    }
    planner.finish();
  }
};

double run_layer_fd(const char* preset, int64_t layer_index, std::string* report) {
  Ctx& ctx = cpu_ctx();
  const int64_t B = 2, T = 5, D = 8;
  Harness h(preset, layer_index, B, T);
  std::vector<double> xv = rand_uniform(size_t(B * T * D), -1, 1, 3);
  const std::vector<double> wv = rand_uniform(size_t(B * T * D), -1, 1, 4);  // loss = Σ w ⊙ y
  Buffer x = make_tensor(Device::cpu, DType::f64, {B, T, D}, xv);
  Buffer y = make_poisoned(Device::cpu, DType::f64, {B, T, D});
  Buffer dy = make_tensor(Device::cpu, DType::f64, {B, T, D}, wv);
  Buffer dx = make_poisoned(Device::cpu, DType::f64, {B, T, D});
  double* xp = x.t().ptr<double>();
  auto loss = [&] {
    h.layer->forward(ctx, x, y);
    const std::vector<double> yv = to_host_f64(ctx, y);
    double s = 0;
    for (size_t i = 0; i < yv.size(); ++i) s += wv[i] * yv[i];
    return s;
  };
  h.params.zero_grads(ctx);
  loss();
  h.layer->backward(ctx, dy, x, dx);
  std::vector<std::vector<double>> grads;
  grads.reserve(h.params.size() + 1);
  for (Param& p : h.params) grads.push_back(to_host_f64(ctx, p.grad));
  grads.push_back(to_host_f64(ctx, dx));
  std::vector<GradInput> inputs;
  size_t i = 0;
  for (Param& p : h.params) {
    if (p.name == "blk.attn.k_proj.bias") {
      // A key bias adds q·b to every score of a row, which softmax ignores: its true gradient is
      // zero, so a relative check would compare round-off. Check it is zero both ways instead.
      for (double g : grads[i]) EXPECT_LT(std::fabs(g), 1e-12) << p.name;
      double* b = p.value.ptr<double>();
      const double saved = b[0], eps = 1e-4;
      b[0] = saved + eps;
      const double up = loss();
      b[0] = saved - eps;
      const double down = loss();
      b[0] = saved;
      EXPECT_LT(std::fabs(up - down) / (2 * eps), 1e-9) << p.name;
      ++i;
      continue;
    }
    double norm = 0;
    for (double g : grads[i]) norm += g * g;
    EXPECT_GT(norm, 0) << p.name << " has an all-zero gradient";
    inputs.push_back({p.name, p.value.ptr<double>(), size_t(p.numel()), &grads[i]});
    ++i;
  }
  inputs.push_back({"x", xp, size_t(B * T * D), &grads[i]});
  return fd_check(loss, inputs, 1e-6, 64, report);
}

TEST(DifferentialAttention, PaperPresetLayerMatchesFiniteDifferences) {
  std::string report;
  const double err = run_layer_fd("paper", 2, &report);
  record_fd_error("layer_differential_attention_paper", err);
  EXPECT_LT(err, 1e-6) << report;
}

TEST(DifferentialAttention, SeedPresetLayerMatchesFiniteDifferences) {
  std::string report;
  const double err = run_layer_fd("seed", 1, &report);
  record_fd_error("layer_differential_attention_seed", err);
  EXPECT_LT(err, 1e-6) << report;
}

TEST(DifferentialAttention, PaperPresetHalvesHeadsAndMatchesTheBaselineParameterCount) {
  Harness h("paper", 1, 1, 3);
  auto* layer = dynamic_cast<DifferentialAttention*>(h.layer.get());
  ASSERT_NE(layer, nullptr);
  const int64_t D = 8, d = 2, H = 2;  // baseline 4 heads of 2 → 2 heads of 2×2
  EXPECT_EQ(layer->heads(), H);
  EXPECT_EQ(layer->spec().dv, 2 * d);
  EXPECT_NEAR(layer->lambda_init(), 0.8 - 0.6 * std::exp(-0.3), 1e-15);
  // Wq, Wk, Wv, Wo (D×D each, no biases) + 4 λ vectors of d + the shared subln weight of 2d.
  EXPECT_EQ(h.params.total_numel(), 4 * D * D + 4 * d + 2 * d);
  // λ from the parameter values, recomputed here.
  Ctx& ctx = cpu_ctx();
  auto v = [&](const char* n) { return to_host_f64(ctx, h.params.at(std::string("blk.attn.") + n).value); };
  const auto q1 = v("lambda_q1"), k1 = v("lambda_k1"), q2 = v("lambda_q2"), k2 = v("lambda_k2");
  double d1 = 0, d2 = 0;
  for (int j = 0; j < d; ++j) d1 += q1[j] * k1[j], d2 += q2[j] * k2[j];
  Buffer x = make_tensor(Device::cpu, DType::f64, {1, 3, D}, rand_uniform(3 * D, -1, 1, 9));
  Buffer y = make_poisoned(Device::cpu, DType::f64, {1, 3, D});
  h.layer->forward(ctx, x, y);
  ASSERT_EQ(layer->lambda_values().size(), 1u);
  EXPECT_NEAR(layer->lambda_values()[0], std::exp(d1) - std::exp(d2) + layer->lambda_init(), 1e-14);
}

TEST(DifferentialAttention, SeedPresetHasPerHeadLambdaAndBiases) {
  Harness h("seed", 0, 1, 3);
  auto* layer = dynamic_cast<DifferentialAttention*>(h.layer.get());
  ASSERT_NE(layer, nullptr);
  const int64_t D = 8, d = 2, H = 4;
  EXPECT_EQ(layer->heads(), H);
  EXPECT_EQ(layer->spec().dv, d);
  // q, k: D→2D with bias; v: D→D with bias; out: D→D with bias; λ' [H]; LayerNorm weight+bias.
  EXPECT_EQ(h.params.total_numel(), 2 * (2 * D * D + 2 * D) + 2 * (D * D + D) + H + 2 * D);
  Ctx& ctx = cpu_ctx();
  const auto raw = to_host_f64(ctx, h.params.at("blk.attn.lambda").value);
  Buffer x = make_tensor(Device::cpu, DType::f64, {1, 3, D}, rand_uniform(3 * D, -1, 1, 9));
  Buffer y = make_poisoned(Device::cpu, DType::f64, {1, 3, D});
  h.layer->forward(ctx, x, y);
  ASSERT_EQ(layer->lambda_values().size(), size_t(H));
  for (int i = 0; i < H; ++i) EXPECT_NEAR(layer->lambda_values()[i], std::exp(raw[i]) + 0.05, 1e-14);
  EXPECT_NEAR(layer->lambda_init(), 0.8, 0);
}

}  // namespace
}  // namespace attnlab::test
