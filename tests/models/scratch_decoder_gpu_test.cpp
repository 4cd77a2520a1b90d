// The scratch decoders (both presets, standard and differential attention) on the GPU (f32, bf16)
// against the CPU in double: logits, loss and every parameter gradient, on odd sizes.
#include <cmath>

#include "core/memory.h"
#include "core/models/scratch_decoder.h"
#include "core/ops/cross_entropy.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

struct GpuCase {
  const char* name;
  ScratchDecoderConfig::Preset preset;
  bool differential;
  DType dtype;
};

ScratchDecoderConfig odd(const GpuCase& g) {
  ScratchDecoderConfig c;
  c.preset = g.preset;
  c.differential = g.differential;
  c.vocab_size = 37;
  c.pad_id = 36;
  c.hidden = 12;
  c.layers = 2;
  c.heads = 4;
  c.head_dim = 3;
  c.ffn = 20;
  c.context = 16;
  return c;
}

struct Pass {
  std::vector<double> logits;
  double loss = 0;
  std::map<std::string, std::vector<double>> grads;
};

Pass run_pass(ScratchDecoder& m, Ctx& ctx, const std::vector<int32_t>& ids, const std::vector<int32_t>& targets,
              double valid, int64_t B, int64_t T) {
  m.plan(ctx, B, T);
  Buffer i = make_ids(ctx.device, {B, T}, ids), t = make_ids(ctx.device, {B, T}, targets);
  m.params().zero_grads(ctx);
  Pass p;
  Tensor loss = m.forward(ctx, i, t, valid);
  p.logits = m.logits_f64(ctx);
  p.loss = to_host_f64(ctx, loss)[0];
  m.backward(ctx);
  for (Param& q : m.params()) p.grads[q.name] = to_host_f64(ctx, q.grad);
  return p;
}

class ScratchDecoderGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(ScratchDecoderGpu, LogitsLossAndEveryGradientMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const GpuCase& g = GetParam();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  const ScratchDecoderConfig c = odd(g);
  ScratchDecoder ref(c, {Device::cpu, DType::f64}, cpu);
  ScratchDecoder dev(c, {Device::cuda, g.dtype}, gpu);
  init_scratch_decoder(ref, cpu, 31);
  // The GPU model holds the values rounded to its dtype; the reference takes the same rounded values.
  for (Param& p : ref.params()) from_host_f64(gpu, dev.params().at(p.name).value, to_host_f64(cpu, p.value));
  for (Param& p : ref.params()) from_host_f64(cpu, p.value, to_host_f64(gpu, dev.params().at(p.name).value));

  const int64_t B = 3, T = 13;
  std::vector<int32_t> ids = rand_ints(size_t(B * T), 0, int32_t(c.vocab_size), 5), targets;
  ids[4] = int32_t(c.pad_id);
  causal_lm_targets(ids, B, T, targets);
  double valid = 0;
  for (auto& t : targets) {
    if (t == c.pad_id) t = kIgnoreIndex;
    valid += t != kIgnoreIndex;
  }
  Pass want = run_pass(ref, cpu, ids, targets, valid, B, T);
  Pass got = run_pass(dev, gpu, ids, targets, valid, B, T);
  const bool bf16 = g.dtype == DType::bf16;
  EXPECT_LT(rel_err(got.logits, want.logits), bf16 ? 3e-2 : 1e-5);
  EXPECT_NEAR(got.loss, want.loss, (bf16 ? 2e-2 : 1e-6) * want.loss);
  for (const auto& [name, w] : want.grads) {
    if (name.find("k_proj.bias") != std::string::npos) {
      // Its true gradient is zero (softmax ignores a per-row shift): compare absolutely.
      for (double x : got.grads.at(name)) EXPECT_LT(std::fabs(x), bf16 ? 1e-2 : 1e-5) << name;
      continue;
    }
    if (bf16 && g.differential && g.preset == ScratchDecoderConfig::Preset::paper && name.find(".lambda_") != std::string::npos) {
      // The paper preset's λ is one scalar per layer and dλ = −Σ dP ⊙ A2 over every row of every
      // head. The per-head norm (subln) makes each row's Σ dP ⊙ (A1 − λ·A2) exactly 0, so that
      // sum nearly cancels and bf16 copies of dP and A2 cannot resolve it (measured on an H100:
      // 36 % off with this init, 97 % with sharper maps). Its precision is checked where the
      // inputs are the same bf16 values on both sides: Cases/AttentionGpu.MatchesCpu/bf16_diffLayer*
      // (the dλ reduction), and at 1e-4 through this whole model in the f32 case.
      for (double x : got.grads.at(name)) EXPECT_TRUE(std::isfinite(x)) << name;
      continue;
    }
    EXPECT_LT(rel_err(got.grads.at(name), w), bf16 ? 8e-2 : 1e-4) << name;
  }
}

using P = ScratchDecoderConfig::Preset;
INSTANTIATE_TEST_SUITE_P(Tiny, ScratchDecoderGpu,
                         ::testing::Values(GpuCase{"paper_standard_f32", P::paper, false, DType::f32},
                                           GpuCase{"paper_differential_f32", P::paper, true, DType::f32},
                                           GpuCase{"paper_differential_bf16", P::paper, true, DType::bf16},
                                           GpuCase{"seed_standard_f32", P::seed, false, DType::f32},
                                           GpuCase{"seed_standard_bf16", P::seed, false, DType::bf16},
                                           GpuCase{"seed_differential_f32", P::seed, true, DType::f32},
                                           GpuCase{"seed_differential_bf16", P::seed, true, DType::bf16}),
                         [](const auto& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace attnlab::test
