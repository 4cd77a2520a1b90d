// Whole models on the GPU (f32 and bf16) against the CPU in double on tiny configs with odd sizes:
// logits, loss and every parameter gradient; KV-only gradients; bitwise-repeatable steps;
// checkpoints loaded onto and saved from the GPU.
#include <cstring>

#include "core/models/weights.h"
#include "io/io_test_util.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

struct GpuCase {
  const char* name;
  ModelArch arch;
  bool tied;
  DType dtype;
};

TinyShape odd_shape() {
  TinyShape s;
  s.D = 48;
  s.L = 2;
  s.Hq = 6;
  s.Hkv = 2;
  s.d = 8;
  s.I = 72;
  s.V = 97;
  s.P = 32;
  return s;
}

struct Pass {
  std::vector<double> logits;
  double loss = 0;
  std::map<std::string, std::vector<double>> grads;
};

Pass run_pass(Model& m, Ctx& ctx, const TokenBatch& tb, int64_t B, int64_t T) {
  m.plan(ctx, B, T);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.params().zero_grads(ctx);
  Pass p;
  Tensor loss = m.forward(ctx, ids, targets, double(tb.valid));
  p.logits = m.logits_f64(ctx);
  p.loss = to_host_f64(ctx, loss)[0];
  m.backward(ctx);
  p.grads = read_grads(ctx, m);
  return p;
}

class ModelGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(ModelGpu, LogitsLossAndEveryGradientMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const GpuCase& gc = GetParam();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  const ModelConfig cfg = tiny_config(gc.arch, gc.tied, odd_shape());
  Model ref(cfg, {Device::cpu, DType::f64}, cpu);
  Model dev(cfg, {Device::cuda, gc.dtype}, gpu);
  randomize_params(ref, cpu, 61);
  // The GPU model holds the values rounded to its dtype; the reference takes the same rounded values.
  copy_params(cpu, ref, gpu, dev);
  copy_params(gpu, dev, cpu, ref);

  const int64_t B = 3, T = 13;
  TokenBatch tb = random_batch(B, T, cfg.vocab_size, 19);
  Pass want = run_pass(ref, cpu, tb, B, T);
  Pass got = run_pass(dev, gpu, tb, B, T);

  const bool bf16 = gc.dtype == DType::bf16;
  EXPECT_LT(rel_err(got.logits, want.logits), bf16 ? 2e-2 : 1e-5);
  EXPECT_NEAR(got.loss, want.loss, (bf16 ? 1e-2 : 1e-6) * want.loss);
  ASSERT_EQ(got.grads.size(), want.grads.size());
  for (const auto& [name, g] : want.grads) EXPECT_LT(rel_err(got.grads.at(name), g), bf16 ? 5e-2 : 1e-4) << name;
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, ModelGpu,
    ::testing::Values(GpuCase{"gpt2_tied_f32", ModelArch::gpt2, true, DType::f32},
                      GpuCase{"gpt2_tied_bf16", ModelArch::gpt2, true, DType::bf16},
                      GpuCase{"gpt2_untied_f32", ModelArch::gpt2, false, DType::f32},
                      GpuCase{"qwen2_tied_f32", ModelArch::qwen2, true, DType::f32},
                      GpuCase{"qwen2_untied_bf16", ModelArch::qwen2, false, DType::bf16},
                      GpuCase{"qwen3_untied_f32", ModelArch::qwen3, false, DType::f32},
                      GpuCase{"qwen3_tied_bf16", ModelArch::qwen3, true, DType::bf16}),
    [](const auto& i) { return std::string(i.param.name); });

TEST(ModelGpuSteps, KvOnlyMatchesFullTrainingAndStepsRepeatBitwise) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& gpu = gpu_ctx();
  for (DType dt : {DType::f32, DType::bf16}) {
    Model m(tiny_config(ModelArch::qwen3, true, odd_shape()), {Device::cuda, dt}, gpu);
    randomize_params(m, gpu, 7);
    const int64_t B = 2, T = 11;
    TokenBatch tb = random_batch(B, T, m.config().vocab_size, 23);
    Pass full = run_pass(m, gpu, tb, B, T);
    Pass again = run_pass(m, gpu, tb, B, T);
    EXPECT_EQ(again.logits, full.logits) << dtype_name(dt);
    EXPECT_EQ(again.loss, full.loss) << dtype_name(dt);
    EXPECT_EQ(again.grads, full.grads) << dtype_name(dt) << ": a step must repeat bit for bit";

    m.params().set_trainable(gpu, {"*.k_proj.*", "*.v_proj.*"});
    Pass kv = run_pass(m, gpu, tb, B, T);
    EXPECT_EQ(kv.grads.size(), size_t(2 * m.config().num_layers));
    for (const auto& [name, g] : kv.grads) EXPECT_LT(rel_err(g, full.grads.at(name)), 1e-6) << name;
  }
}

TEST(ModelGpuSteps, CheckpointsLoadOntoAndSaveFromTheGpu) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  ScratchDir a, b;
  Model host(tiny_config(ModelArch::gpt2, true, odd_shape()), {Device::cpu, DType::f32}, cpu);
  randomize_params(host, cpu, 2);
  save_model(host, cpu, a.path());
  auto dev = load_model(a.path(), {Device::cuda, DType::f32}, gpu);
  for (const Param& p : host.params())
    EXPECT_EQ(to_host_f64(gpu, dev->params().at(p.name).value), to_host_f64(cpu, p.value)) << p.name;
  auto dev16 = load_model(a.path(), {Device::cuda, DType::bf16}, gpu);
  save_model(*dev16, gpu, b.path());
  auto back = load_model(b.path(), {Device::cpu, DType::f32}, cpu);
  for (const Param& p : host.params())
    EXPECT_EQ(to_host_f64(cpu, back->params().at(p.name).value), round_as(DType::bf16, to_host_f64(cpu, p.value)))
        << p.name;
}

}  // namespace
}  // namespace attnlab::test
