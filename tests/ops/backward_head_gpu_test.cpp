#include "core/ops/backward_head.h"
#include "ops/backward_head_test_util.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

struct GpuCase {
  int64_t H, latent, top_k, dk, dv, tile;
};

// Odd and prime sizes: N = 37 rows, V = 1031 classes (prime) in 1088 rows, D = 64; tiles that
// do not divide V, one that covers it.
std::vector<GpuCase> gpu_cases() {
  return {{1, 0, 0, 0, 0, 300}, {3, 41, 50, 48, 45, 257}, {2, 0, 7, 0, 0, 1031}, {1, 33, 0, 0, 0, 500}};
}

}  // namespace

class BackwardHeadGpu : public ::testing::TestWithParam<DType> {};

TEST_P(BackwardHeadGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  // bf16 rounds K, Vv, Ê, the queries and the GEMM operand tiles (w, dS) to 8 bits; the scores
  // (|s| up to ~sqrt(dk)) carry that error into the softmax, and the gradients pass through two
  // further bf16 products, hence the looser gradient tolerance.
  const double tol = gpu_tol(dt), grad_tol = dt == DType::bf16 ? 3e-2 : 1e-4;
  uint64_t seed = 40;
  for (const GpuCase& g : gpu_cases()) {
    BackwardHeadSpec s;
    s.D = 64, s.latent = g.latent, s.heads = g.H, s.top_k = g.top_k, s.dk = g.dk, s.dv = g.dv, s.tile = g.tile;
    HeadCase c = make_head_case(s, 37, 1031, 1088, seed += 10, 0.1);
    c.hidden = round_as(dt, c.hidden), c.embed = round_as(dt, c.embed);
    for (auto* p : c.params()) *p = round_as(dt, *p);
    HeadResult got = run_head(Device::cuda, dt, c, true, 1.3);
    HeadResult ref = run_head(Device::cpu, DType::f64, c, true, 1.3);
    const std::string what = c.label() + " tile " + std::to_string(g.tile);
    EXPECT_LT(rel_err(got.loss, ref.loss), tol) << what;
    EXPECT_LT(rel_err(got.logprobs, ref.logprobs), tol) << what;
    for (size_t i = 0; i < ref.grads.size(); ++i)
      EXPECT_LT(rel_err(got.grads[i], ref.grads[i]), grad_tol) << what << " " << kHeadParamNames[i];
  }
}

// No float atomics: two runs give the same bits.
TEST_P(BackwardHeadGpu, Deterministic) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  BackwardHeadSpec s;
  s.D = 64, s.latent = 41, s.heads = 3, s.top_k = 50, s.dk = 48, s.dv = 45, s.tile = 257;
  HeadCase c = make_head_case(s, 37, 1031, 1088, 77, 0.1);
  HeadResult a = run_head(Device::cuda, dt, c, true), b = run_head(Device::cuda, dt, c, true);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.logprobs, b.logprobs);
  for (size_t i = 0; i < a.grads.size(); ++i) EXPECT_EQ(a.grads[i], b.grads[i]) << kHeadParamNames[i];
}

INSTANTIATE_TEST_SUITE_P(Dtypes, BackwardHeadGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
