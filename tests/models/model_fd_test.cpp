// Whole-model finite-difference checks in double: every parameter tensor of tiny GPT-2, Qwen2
// (GQA, q/k/v biases) and Qwen3 (q/k norm, GQA) models, tied and untied, has a sample of its
// elements perturbed and the loss difference compared with the backward's gradient.
#include <cmath>

#include "core/layers/attention_layer.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

struct FdCase {
  const char* name;
  ModelArch arch;
  bool tied;
  bool dropout;                 // GPT-2 in training mode: embedding and residual dropout active
  const char* attention = "";   // attnlab.attention block (JSON), "" for none
};

double run_fd(const FdCase& fc, std::string* report) {
  Ctx& ctx = cpu_ctx();
  ModelConfig cfg = tiny_config(fc.arch, fc.tied);
  if (*fc.attention) cfg.attnlab = nlohmann::ordered_json::parse(std::string("{\"attention\": ") + fc.attention + "}");
  Model m(cfg, {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 100);
  m.set_training(fc.dropout);
  const int64_t B = 2, T = 5;
  m.plan(ctx, B, T);
  TokenBatch batch = random_batch(B, T, cfg.vocab_size, 7);
  Buffer ids = make_ids(Device::cpu, {B, T}, batch.ids), targets = make_ids(Device::cpu, {B, T}, batch.targets);

  // Dropout draws its masks from the context's Philox counter: rewind it so every forward of the
  // check drops the same elements.
  auto loss = [&] {
    ctx.rng_offset = 0;
    Tensor l = m.forward(ctx, ids, targets, double(batch.valid));
    return to_host_f64(ctx, l)[0];
  };
  m.params().zero_grads(ctx);
  const double l0 = loss();
  EXPECT_TRUE(std::isfinite(l0) && l0 > 0) << l0;
  m.backward(ctx);
  auto grads = read_grads(ctx, m);
  EXPECT_EQ(grads.size(), m.params().size()) << "every parameter is trainable by default";

  std::vector<GradInput> inputs;
  for (Param& p : m.params()) {
    const std::vector<double>& g = grads.at(p.name);
    double norm = 0;
    for (double x : g) norm += x * x;
    // A parameter the loss ignores would pass any FD check: each one must move the loss.
    EXPECT_GT(norm, 0) << p.name << " has an all-zero gradient";
    inputs.push_back({p.name, p.value.ptr<double>(), size_t(p.numel()), &g});
  }
  return fd_check(loss, inputs, 1e-5, 6, report);
}

class ModelFd : public ::testing::TestWithParam<FdCase> {};

TEST_P(ModelFd, EveryParameterTensorMatchesFiniteDifferences) {
  std::string report;
  const double err = run_fd(GetParam(), &report);
  record_fd_error(std::string("model_") + GetParam().name, err);
  EXPECT_LT(err, 1e-6) << report;
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, ModelFd,
    ::testing::Values(FdCase{"gpt2_tied", ModelArch::gpt2, true, false},
                      FdCase{"gpt2_untied", ModelArch::gpt2, false, false},
                      FdCase{"gpt2_dropout", ModelArch::gpt2, true, true},
                      FdCase{"qwen2_gqa_bias_tied", ModelArch::qwen2, true, false},
                      FdCase{"qwen2_gqa_bias_untied", ModelArch::qwen2, false, false},
                      FdCase{"qwen3_qknorm_gqa_tied", ModelArch::qwen3, true, false},
                      FdCase{"qwen3_qknorm_gqa_untied", ModelArch::qwen3, false, false},
                      FdCase{"qwen2_ramp_attention", ModelArch::qwen2, false, false,
                             R"({"norm": "ramp", "ramp_alpha": 0.3})"},
                      // Differential attention on RoPE models: rotate-half per sub-head (Qwen3: after q/k norm).
                      FdCase{"qwen2_differential_rope", ModelArch::qwen2, false, false, R"({"variant": "differential"})"},
                      FdCase{"qwen3_differential_rope_seed", ModelArch::qwen3, true, false,
                             R"({"variant": "differential", "preset": "seed", "norm": "linear"})"},
                      // impl: fused on the CPU runs the tiled reference (core/ops/attention_tiled.h).
                      FdCase{"gpt2_fused", ModelArch::gpt2, true, false, R"({"impl": "fused"})"},
                      FdCase{"qwen2_ramp_fused_temperature", ModelArch::qwen2, false, false,
                             R"({"norm": "ramp", "ramp_alpha": 0.3, "controller": "temperature", "impl": "fused"})"},
                      FdCase{"gpt2_differential_linear_fused", ModelArch::gpt2, true, false,
                             R"({"variant": "differential", "norm": "linear", "impl": "fused"})"}),
    [](const auto& i) { return std::string(i.param.name); });

TEST(ModelDropout, ChangesTheLossOnlyInTrainingMode) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(ModelArch::gpt2, true), {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 5);
  const int64_t B = 2, T = 5;
  m.plan(ctx, B, T);
  TokenBatch batch = random_batch(B, T, m.config().vocab_size, 8);
  Buffer ids = make_ids(Device::cpu, {B, T}, batch.ids), targets = make_ids(Device::cpu, {B, T}, batch.targets);
  auto loss = [&] { return to_host_f64(ctx, m.forward(ctx, ids, targets, double(batch.valid)))[0]; };
  const double eval1 = loss(), eval2 = loss();
  EXPECT_EQ(eval1, eval2);
  m.set_training(true);
  const double train1 = loss(), train2 = loss();  // fresh Philox counters each time
  EXPECT_NE(train1, eval1);
  EXPECT_NE(train1, train2);
}

}  // namespace
}  // namespace attnlab::test
