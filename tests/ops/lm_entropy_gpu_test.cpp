#include "core/ops/lm_entropy.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

struct Out {
  std::vector<double> entropy, lse;
};

Out run(Device dev, DType dt, int64_t T, int64_t D, int64_t V, int64_t Vp, int64_t tile, LmEntropyMode mode,
        const std::vector<double>& x, const std::vector<double>& emb) {
  Ctx& ctx = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  const DType acc = acc_dtype(dt);
  Buffer bx = make_tensor(dev, dt, {T, D}, x, "x"), be = make_tensor(dev, dt, {Vp, D}, emb, "emb");
  Buffer e = make_poisoned(dev, acc, {T}, "entropy"), scratch = make_poisoned(dev, acc, {T, tile}, "scratch");
  Buffer state = make_poisoned(dev, acc, {T, 3}, "state");
  lm_entropy_forward(ctx, {.x = bx.t(), .emb = be.t(), .entropy = e.t(), .scratch = scratch.t(), .state = state.t(),
                           .vocab = V, .mode = mode});
  Out o{to_host_f64(ctx, e.t()), {}};
  const auto st = to_host_f64(ctx, state.t());
  for (int64_t t = 0; t < T; ++t) o.lse.push_back(st[size_t(t * 3)] + std::log(st[size_t(t * 3 + 1)]));
  return o;
}

}  // namespace

class LmEntropyGpu : public ::testing::TestWithParam<DType> {};

// GPU (fp32 logits from f32 or bf16 operands) against the CPU in double on the same rounded
// inputs; tiles that do not divide V, a padded embedding whose extra rows would dominate if read.
TEST_P(LmEntropyGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  struct Shape {
    int64_t T, D, V, Vp, tile;
  };
  for (Shape s : {Shape{1, 31, 1009, 1024, 64}, Shape{7, 67, 5003, 5056, 1000}, Shape{173, 131, 10007, 10007, 4096},
                  Shape{61, 29, 997, 1000, 2048}, Shape{1500, 17, 997, 1000, 300} /* more rows than blocks */}) {
    auto x = round_as(dt, rand_uniform(size_t(s.T * s.D), -1, 1, uint64_t(s.T + s.V)));
    auto emb = round_as(dt, rand_uniform(size_t(s.Vp * s.D), -0.8, 0.8, uint64_t(s.D + s.V)));
    for (int64_t v = s.V; v < s.Vp; ++v)
      for (int64_t d = 0; d < s.D; ++d) emb[size_t(v * s.D + d)] = 4.0;
    const std::string what = "T" + std::to_string(s.T) + " D" + std::to_string(s.D) + " V" + std::to_string(s.V) +
                             " tile" + std::to_string(s.tile);
    for (LmEntropyMode mode : {LmEntropyMode::exact, LmEntropyMode::one_pass}) {
      Out got = run(Device::cuda, dt, s.T, s.D, s.V, s.Vp, s.tile, mode, x, emb);
      Out ref = run(Device::cpu, DType::f64, s.T, s.D, s.V, s.Vp, s.tile, mode, x, emb);
      // fp32 logits either way (bf16 operands are exact in fp32): fp32-level agreement.
      EXPECT_LT(rel_err(got.entropy, ref.entropy), 1e-5) << what << " " << lm_entropy_mode_name(mode);
      EXPECT_LT(rel_err(got.lse, ref.lse), 1e-5) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LmEntropyGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
