// Generation on the GPU against the CPU on tiny configs with odd sizes: the KV-cache logits of a
// ragged batch after the prefill and after every decode step (f32 and bf16, against f64 on the
// same rounded parameters), and greedy ids (f32).
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

TinyShape odd_gen_shape() {
  TinyShape s;
  s.D = 48;
  s.L = 2;
  s.Hq = 6;
  s.Hkv = 2;
  s.d = 8;
  s.I = 72;
  s.V = 97;
  s.P = 40;
  return s;
}

struct GpuGenCase {
  const char* name;
  GenCase model;
  DType dtype;
};

void PrintTo(const GpuGenCase& c, std::ostream* os) { *os << c.name; }

class GenerateGpu : public ::testing::TestWithParam<GpuGenCase> {};

TEST_P(GenerateGpu, DecodeLogitsMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const GpuGenCase& gc = GetParam();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  const ModelConfig cfg = gen_config(gc.model, odd_gen_shape());
  Model ref(cfg, {Device::cpu, DType::f64, false}, cpu);
  Model dev(cfg, {Device::cuda, gc.dtype, false}, gpu);
  randomize_params(ref, cpu, 71);
  // The GPU model holds the values rounded to its dtype; the reference takes the same values.
  copy_params(cpu, ref, gpu, dev);
  copy_params(gpu, dev, cpu, ref);

  const int32_t V = int32_t(cfg.vocab_size);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(7, 0, V, 1), rand_ints(3, 0, V, 2),
                                                     rand_ints(5, 0, V, 3)};
  const int64_t B = 3, steps = 6;
  CachedForward want_fwd(ref, cpu, B, 7, 7 + steps), got_fwd(dev, gpu, B, 7, 7 + steps);
  const double tol = gc.dtype == DType::bf16 ? 2e-2 : 1e-5;
  std::vector<double> want = to_host_f64(cpu, want_fwd.prefill(cpu, prompts));
  std::vector<double> got = to_host_f64(gpu, got_fwd.prefill(gpu, prompts));
  for (int64_t step = 0;; ++step) {
    for (int64_t b = 0; b < B; ++b)
      EXPECT_LT(rel_err(row_of(got, b, V), row_of(want, b, V)), tol) << "row " << b << " after " << step << " steps";
    if (step == steps) break;
    const std::vector<int32_t> next = rand_ints(size_t(B), 0, V, 10 + uint64_t(step));
    want = to_host_f64(cpu, want_fwd.decode(cpu, next));
    got = to_host_f64(gpu, got_fwd.decode(gpu, next));
  }
}

// Greedy ids are compared in f32 only (bf16 logits may reorder near-ties): its own suite, so no
// bf16 case is instantiated just to skip.
class GenerateGpuF32 : public GenerateGpu {};

TEST_P(GenerateGpuF32, GreedyIdsEqualCpu) {
  ATTNLAB_REQUIRE_GPU();
  const GpuGenCase& gc = GetParam();
  ASSERT_EQ(gc.dtype, DType::f32);
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  const ModelConfig cfg = gen_config(gc.model, odd_gen_shape());
  Model ref(cfg, {Device::cpu, DType::f32, false}, cpu);
  Model dev(cfg, {Device::cuda, DType::f32, false}, gpu);
  randomize_params(ref, cpu, 73);
  copy_params(cpu, ref, gpu, dev);
  const int32_t V = int32_t(cfg.vocab_size);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(9, 0, V, 4), rand_ints(2, 0, V, 5)};
  GenerationConfig g;
  g.max_new_tokens = 12;
  g.repetition_penalty = 1.3f;  // exercises the seen bitmask on the device
  const GenerationResult want = generate(ref, cpu, prompts, g);
  const GenerationResult got = generate(dev, gpu, prompts, g);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.stats.decode_steps, 11);
}

const GpuGenCase kGenCases[] = {
    {"gpt2_f32", {"gpt2", ModelArch::gpt2, true, nullptr}, DType::f32},
    {"gpt2_bf16", {"gpt2", ModelArch::gpt2, true, nullptr}, DType::bf16},
    {"qwen2_f32", {"qwen2", ModelArch::qwen2, false, nullptr}, DType::f32},
    {"qwen2_bf16", {"qwen2", ModelArch::qwen2, false, nullptr}, DType::bf16},
    {"qwen3_f32", {"qwen3", ModelArch::qwen3, true, nullptr}, DType::f32},
    {"qwen3_bf16", {"qwen3", ModelArch::qwen3, true, nullptr}, DType::bf16}};
INSTANTIATE_TEST_SUITE_P(Tiny, GenerateGpu, ::testing::ValuesIn(kGenCases),
                         [](const auto& i) { return std::string(i.param.name); });
INSTANTIATE_TEST_SUITE_P(Tiny, GenerateGpuF32, ::testing::Values(kGenCases[0], kGenCases[2], kGenCases[4]),
                         [](const auto& i) { return std::string(i.param.name); });

// Sampling on the device: reproducible for a seed, different across seeds, every id in range.
TEST(GenerateGpuSampling, SeededAndInRange) {
  ATTNLAB_REQUIRE_GPU();
  const ModelConfig cfg = gen_config({"qwen2", ModelArch::qwen2, true, nullptr}, odd_gen_shape());
  Model dev(cfg, {Device::cuda, DType::bf16, false}, gpu_ctx());
  randomize_params(dev, gpu_ctx(), 75);
  const int32_t V = int32_t(cfg.vocab_size);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(6, 0, V, 6), rand_ints(4, 0, V, 7),
                                                     rand_ints(1, 0, V, 8)};
  GenerationConfig g;
  g.max_new_tokens = 10;
  g.do_sample = true;
  g.temperature = 1.0f;
  g.top_k = 0;
  auto run = [&](uint64_t seed) {
    Ctx ctx = gpu_ctx();
    ctx.seed = seed;
    ctx.rng_offset = 0;
    return generate(dev, ctx, prompts, g).tokens;
  };
  const auto a = run(3), again = run(3), other = run(4);
  EXPECT_EQ(a, again);
  EXPECT_NE(a, other);
  for (const auto& row : a)
    for (int32_t id : row) EXPECT_TRUE(id >= 0 && id < V) << id;
}

}  // namespace
}  // namespace attnlab::test
