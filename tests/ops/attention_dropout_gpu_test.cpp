// GPU vs CPU for attention-probability dropout (spec.dropout, GPT-2's attn_pdrop): the same Philox
// mask on both devices (same seed and offset), so output and gradients agree; softmax and
// differential maps, MHA and GQA, odd and prime shapes, fp32 and bf16. The CPU reference runs in
// f64 on the inputs rounded to the GPU dtype.
#include "tests/ops/attention_test_util.h"

namespace attnlab::test {
namespace {

struct DropCase {
  const char* name;
  bool differential;
  int64_t B, T, Hq, Hkv, d;
  double p;
};

const DropCase kDropCases[] = {
    {"mhaT7", false, 2, 7, 12, 12, 64, 0.1},
    {"gqaT131", false, 1, 131, 6, 2, 32, 0.3},
    {"diffT37", true, 2, 37, 4, 4, 64, 0.1},
};

class AttentionDropoutGpu : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(AttentionDropoutGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const auto [dt, idx] = GetParam();
  const DropCase& c = kDropCases[idx];
  AttnProblem pr;
  pr.spec.Hq = c.Hq, pr.spec.Hkv = c.Hkv, pr.spec.d = c.d, pr.spec.dv = c.d;
  pr.spec.causal = true;
  pr.spec.differential = c.differential;
  pr.spec.dropout = c.p;
  pr.B = c.B, pr.T = c.T, pr.S = c.T, pr.S_cap = c.T;
  pr.dropout_offset = 4242;
  pr.randomize(77 + uint64_t(c.T), 2.0);
  for (auto* v : {&pr.q, &pr.k, &pr.v, &pr.q2, &pr.k2, &pr.dout}) *v = round_as(dt, *v);
  pr.lam = round_as(DType::f32, pr.lam);
  Ctx& g_ctx = gpu_ctx();
  Ctx& c_ctx = cpu_ctx();
  ASSERT_EQ(g_ctx.seed, c_ctx.seed) << "the test contexts must share the Philox seed";
  const AttnOutputs g = pr.run(g_ctx, dt, true), r = pr.run(c_ctx, DType::f64, true);
  const double tol = dt == DType::bf16 ? 2e-2 : 2e-5;
  EXPECT_LT(rel_err(g.o, r.o), tol) << c.name;
  EXPECT_LT(rel_err(g.p, r.p), tol) << c.name;
  EXPECT_LT(rel_err(g.dq, r.dq), 3 * tol) << c.name;
  EXPECT_LT(rel_err(g.dk, r.dk), 3 * tol) << c.name;
  EXPECT_LT(rel_err(g.dv, r.dv), 3 * tol) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionDropoutGpu,
                         ::testing::Combine(::testing::Values(DType::f32, DType::bf16), ::testing::Values(0, 1, 2)));

}  // namespace
}  // namespace attnlab::test
