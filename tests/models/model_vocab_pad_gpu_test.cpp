// The padded vocabulary on the GPU (f32 and bf16): a padded CUDA model against an UNPADDED CPU
// model in double on the same rounded values (logits, loss, the [V, C] gradients), exactly zero
// gradients and values in the padding rows through AdamW steps with weight decay, and generation
// that never emits a padding id when the padding rows are made adversarial. V = 97 → Vp = 128.
#include <algorithm>

#include "train/optimizer.h"
#include "models/generate_test_util.h"
#include "models/vocab_pad_test_util.h"

namespace attnlab::test {
namespace {

// Odd sizes (V = 97 pads to 128) as the other GPU model tests use.
TinyShape odd_pad_shape() { return TinyShape{48, 2, 6, 2, 8, 72, 97, 40}; }

// Copies the real rows of every parameter of `from` into `to` (the padding rows of either stay).
void copy_real_rows(Ctx& from_ctx, const Model& from, Ctx& to_ctx, Model& to) {
  for (const Param& p : from.params()) {
    const Param& q = to.params().at(p.name);
    from_host_f64(to_ctx, q.unpadded(q.value), to_host_f64(from_ctx, p.unpadded(p.value)));
  }
}

struct PadGpuCase {
  const char* name;
  ModelArch arch;
  bool tied;
  DType dtype;
};

class VocabPadGpu : public ::testing::TestWithParam<PadGpuCase> {};

TEST_P(VocabPadGpu, PaddedGpuMatchesUnpaddedCpuAndPaddingStaysZero) {
  ATTNLAB_REQUIRE_GPU();
  const PadGpuCase& pc = GetParam();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  const ModelConfig cfg = tiny_config(pc.arch, pc.tied, odd_pad_shape());
  ModelOptions ref_opt{Device::cpu, DType::f64, true};
  ref_opt.vocab_multiple = 1;
  Model ref(cfg, ref_opt, cpu);
  Model dev(cfg, {Device::cuda, pc.dtype, true}, gpu);
  ASSERT_EQ(dev.padded_vocab(), 128);
  randomize_params(ref, cpu, 81);
  copy_real_rows(cpu, ref, gpu, dev);
  copy_real_rows(gpu, dev, cpu, ref);  // the reference takes the GPU's rounded values

  const int64_t B = 3, T = 13;
  const TokenBatch tb = random_batch(B, T, cfg.vocab_size, 82);
  const PadPass want = pad_pass(ref, cpu, tb, B, T), got = pad_pass(dev, gpu, tb, B, T);
  const bool bf16 = pc.dtype == DType::bf16;
  ASSERT_EQ(got.logits.size(), want.logits.size());
  EXPECT_LT(rel_err(got.logits, want.logits), bf16 ? 2e-2 : 1e-5);
  EXPECT_NEAR(got.loss, want.loss, (bf16 ? 1e-2 : 1e-6) * want.loss);
  for (const auto& [name, g] : want.grads) EXPECT_LT(rel_err(got.grads.at(name), g), bf16 ? 5e-2 : 1e-4) << name;
  Param* head = dev.lm_head_weight();
  EXPECT_TRUE(all_zero(padding_of(gpu, *head, head->grad)));

  const config::OptimConfig oc = decaying_adamw();
  train::TrainOptimizer opt(dev.params(), oc, gpu, nullptr);
  for (int step = 0; step < 3; ++step) {
    pad_pass(dev, gpu, random_batch(B, T, cfg.vocab_size, 83 + uint64_t(step)), B, T);
    EXPECT_TRUE(all_zero(padding_of(gpu, *head, head->grad))) << "step " << step;
    opt.step(gpu, oc.lr);
    ASSERT_EQ(to_host_f64(gpu, opt.nonfinite())[0], 0.0);
    opt.record_outcome(true);
  }
  for (Param* p : {dev.token_embedding(), head})
    EXPECT_TRUE(all_zero(padding_of(gpu, *p, p->value))) << p->name << ": padding rows moved";
}

// As the CPU test: padding rows poked so that an argmax over all Vp columns picks a padding id;
// greedy generation must give exactly the unpoked model's ids, all below V.
TEST_P(VocabPadGpu, GenerationNeverEmitsPaddingIds) {
  ATTNLAB_REQUIRE_GPU();
  const PadGpuCase& pc = GetParam();
  Ctx& gpu = gpu_ctx();
  const ModelConfig cfg = tiny_config(pc.arch, pc.tied, odd_pad_shape());
  Model m(cfg, {Device::cuda, pc.dtype, false}, gpu);
  randomize_params(m, gpu, 84);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(6, 0, int32_t(cfg.vocab_size), 85),
                                                     rand_ints(2, 0, int32_t(cfg.vocab_size), 86)};
  GenerationConfig greedy;
  greedy.max_new_tokens = 5;
  const GenerationResult clean = generate(m, gpu, prompts, greedy);

  Param* head = m.lm_head_weight();
  const int64_t V = m.vocab(), D = head->shape[1];
  ASSERT_GE(m.padded_vocab() - V, 31);
  std::vector<double> w = to_host_f64(gpu, head->value);
  for (int64_t j = 0; j < 31; ++j) w[size_t((V + j) * D + j)] = 1e4;  // bf16 holds 1e4 closely enough
  from_host_f64(gpu, head->value, w);
  const int64_t T = int64_t(prompts[0].size()), Vp = m.padded_vocab();
  m.plan(gpu, 1, T);
  Buffer ids = make_ids(Device::cuda, {1, T}, prompts[0]);
  m.forward(gpu, ids, Tensor(), 0);
  const std::vector<double> all = to_host_f64(gpu, m.padded_logits());
  const auto last = all.begin() + std::ptrdiff_t((T - 1) * Vp);
  ASSERT_GE(std::max_element(last, last + Vp) - last, V) << "the poke must win an unmasked argmax";
  const GenerationResult got = generate(m, gpu, prompts, greedy);
  for (const auto& row : got.tokens)
    for (int32_t id : row) EXPECT_TRUE(id >= 0 && id < V) << "generated id " << id << " of V = " << V;
  EXPECT_EQ(got.tokens, clean.tokens);
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, VocabPadGpu,
    ::testing::Values(PadGpuCase{"gpt2_tied_f32", ModelArch::gpt2, true, DType::f32},
                      PadGpuCase{"gpt2_tied_bf16", ModelArch::gpt2, true, DType::bf16},
                      PadGpuCase{"qwen2_untied_bf16", ModelArch::qwen2, false, DType::bf16},
                      PadGpuCase{"qwen3_untied_f32", ModelArch::qwen3, false, DType::f32}),
    [](const auto& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace attnlab::test
