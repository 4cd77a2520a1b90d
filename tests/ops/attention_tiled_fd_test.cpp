// The tiled attention's backward against finite differences of its own forward (double), its
// float path against the double materialized op, and its input validation.
#include <tuple>

#include "tests/ops/attention_tiled_test_util.h"

namespace attnlab::test {
namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// GQA 4:2, causal with offset 2 (T = 5, S = 7, S_cap = 9), one padded sequence, both controllers.
AttnProblem fd_problem(AttnNorm norm, bool differential, int64_t nlambda, uint64_t seed) {
  AttnProblem p;
  p.spec.Hq = 4, p.spec.Hkv = 2, p.spec.d = 3, p.spec.dv = 4;
  p.spec.norm = norm, p.spec.ramp_alpha = 0.3, p.spec.differential = differential;
  p.nlambda = nlambda;
  p.B = 2, p.T = 5, p.S = 7, p.S_cap = 9;
  p.key_len = {7, 4};
  p.add = p.mul = true;
  p.randomize(seed, 1.5);
  return p;
}

using FdParam = std::tuple<AttnNorm, int>;  // int: 0 standard, 1 differential per layer, 2 per head
class AttentionTiledFd : public ::testing::TestWithParam<FdParam> {};

// loss = Σ dO ⊙ O of the tiled forward; every input with a gradient is probed. The additive
// controller's gradient is zero for normalising maps (checked exactly against the materialized op
// in attention_tiled_test), so it is probed for relaxed_linear only, as in attention_test.
TEST_P(AttentionTiledFd, GradientsMatchFiniteDifferences) {
  auto [norm, var] = GetParam();
  AttnProblem pr = fd_problem(norm, var > 0, var == 2 ? 4 : 1, 800 + int(norm) * 3 + var);
  const AttentionTiles tiles{2, 3};
  Ctx& c = cpu_ctx();
  const AttnOutputs g = run_tiled(pr, c, DType::f64, true, tiles);
  auto loss = [&] { return dot(run_tiled(pr, c, DType::f64, false, tiles).o, pr.dout); };
  std::vector<GradInput> in = {{"q", pr.q.data(), pr.q.size(), &g.dq},
                               {"k", pr.k.data(), pr.k.size(), &g.dk},
                               {"v", pr.v.data(), pr.v.size(), &g.dv},
                               {"tau", pr.smul.data(), pr.smul.size(), &g.dmul}};
  if (pr.spec.differential) {
    in.push_back({"q2", pr.q2.data(), pr.q2.size(), &g.dq2});
    in.push_back({"k2", pr.k2.data(), pr.k2.size(), &g.dk2});
    in.push_back({"lambda", pr.lam.data(), pr.lam.size(), &g.dlambda});
  }
  if (norm == AttnNorm::relaxed_linear) in.push_back({"a", pr.sadd.data(), pr.sadd.size(), &g.dadd});
  std::string report;
  const double err = fd_check(loss, in, 1e-6, 48, &report);
  record_fd_error("attention_tiled", err);
  EXPECT_LT(err, 1e-6) << report;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, AttentionTiledFd,
    ::testing::Combine(::testing::Values(AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear),
                       ::testing::Values(0, 1, 2)),
    [](const auto& i) {
      const int v = std::get<1>(i.param);
      return std::string(attn_norm_name(std::get<0>(i.param))) +
             (v == 0 ? "_standard" : v == 1 ? "_diffLayer" : "_diffHead");
    });

// The f32 tiled path (float accumulation, as on a GPU) against the f64 materialized op on the
// same f32-representable inputs.
TEST(AttentionTiledFloat, MatchesDoubleMaterialized) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear}) {
    for (bool diff : {false, true}) {
      AttnProblem pr = fd_problem(norm, diff, 4, 900 + int(norm) * 2 + diff);
      pr.nlambda = diff ? 4 : 1;
      pr.randomize(900 + int(norm) * 2 + diff, 1.5);
      for (auto* v : {&pr.q, &pr.k, &pr.v, &pr.q2, &pr.k2, &pr.dout, &pr.lam, &pr.sadd, &pr.smul})
        *v = round_as(DType::f32, *v);
      AttnCaptureReq cap;
      cap.rows = {1, 4};
      cap.spans = {0, 2, 1, 6};
      cap.variance = true;
      cap.entropy = cap.kl = !diff && norm != AttnNorm::relaxed_linear;
      const AttnOutputs d = pr.run(cpu_ctx(), DType::f64, true, &cap);
      const AttnOutputs f = run_tiled(pr, cpu_ctx(), DType::f32, true, {3, 2}, &cap);
      expect_same_outputs(f, d, 2e-5, std::string(attn_norm_name(norm)) + (diff ? " diff" : ""));
    }
  }
}

TEST(AttentionTiledValidation, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  AttentionSpec s;
  s.Hq = 4, s.Hkv = 2, s.d = 3, s.dv = 4, s.norm = AttnNorm::ramp;
  Buffer q(Device::cpu, DType::f64, {2, 4, 5, 3}), k(Device::cpu, DType::f64, {2, 2, 9, 3});
  Buffer v(Device::cpu, DType::f64, {2, 2, 9, 4}), o(Device::cpu, DType::f64, {2, 4, 5, 4});
  Buffer parts(Device::cpu, DType::f64, {2, 4, 5, 8}), lse(Device::cpu, DType::f64, {2, 4, 5});
  Buffer rmin(Device::cpu, DType::i32, {2, 4, 5}), rsum(Device::cpu, DType::f64, {2, 4, 5});
  Buffer probs(Device::cpu, DType::f64, {2, 4, 5, 7});
  for (const Buffer* x : {&q, &k, &v, &o}) from_host_f64(c, x->t(), rand_uniform(size_t(x->t().numel()), -1, 1, 5));
  AttentionTiledArgs a;
  a.attn.spec = s;
  a.attn.q = q, a.attn.k = k, a.attn.v = v, a.attn.out = o, a.attn.lse = lse, a.attn.row_min = rmin,
  a.attn.row_sum = rsum;
  a.out_parts = parts, a.S = 7;
  attention_tiled_forward(c, a);  // the valid configuration runs
  a.S = 10;                       // S > S_cap
  EXPECT_THROW(attention_tiled_forward(c, a), Error);
  a.S = 0;  // unset key count
  EXPECT_THROW(attention_tiled_forward(c, a), Error);
  a.S = 7;
  a.out_parts = Tensor{};  // ramp saves its two parts
  EXPECT_THROW(attention_tiled_forward(c, a), Error);
  a.out_parts = parts;
  a.attn.probs = probs;  // no map on the tiled path
  EXPECT_THROW(attention_tiled_forward(c, a), Error);
  a.attn.probs = Tensor{};
  a.tiles = {0, 4};
  EXPECT_THROW(attention_tiled_forward(c, a), Error);
  a.tiles = {};
  a.attn.row_min = Tensor{};  // ramp saves the row min
  EXPECT_THROW(attention_tiled_forward(c, a), Error);
  a.attn.row_min = rmin;

  AttentionTiledBackwardArgs b;
  b.attn.spec = s;
  b.attn.q = q, b.attn.k = k, b.attn.v = v, b.attn.dout = o, b.attn.lse = lse, b.attn.row_min = rmin,
  b.attn.row_sum = rsum;
  b.out_parts = parts, b.S = 7;
  Buffer dq(Device::cpu, DType::f64, {2, 4, 5, 3});
  b.attn.dq = dq;
  const size_t ws = attention_tiled_workspace_bytes(s, 2, 5, DType::f64);
  Buffer small(Device::cpu, DType::f32, {int64_t(ws / 4) - 1}), enough(Device::cpu, DType::f32, {int64_t(ws / 4) + 1});
  b.attn.workspace = small;
  EXPECT_THROW(attention_tiled_backward(c, b), Error);
  b.attn.workspace = enough;
  attention_tiled_backward(c, b);  // runs with enough scratch
  AttentionSpec sm = s;
  sm.norm = AttnNorm::softmax;
  b.attn.spec = sm;  // softmax: one part, the backward needs `out` instead of out_parts
  b.out_parts = Tensor{};
  EXPECT_THROW(attention_tiled_backward(c, b), Error);
  b.out = o;
  attention_tiled_backward(c, b);
}

}  // namespace
}  // namespace attnlab::test
