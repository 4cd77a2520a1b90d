// The fused CUDA attention kernels (cuda/attention_fused*.cu), reached through the tiled
// reference's entry points (core/ops/attention_tiled.h) with a CUDA context, against
//   - the CPU materialized op in f64 on the inputs rounded to the GPU dtype (every normalisation
//     the kernels take, standard and differential with λ per layer and per head, GQA and MHA,
//     d ∈ {64, 128}, dv ∈ {d, 2d}, odd and prime T and S, causal and not, key padding with a fully
//     masked sequence, KV-cache offsets and decoding, controllers, every statistic, captured rows);
//   - the GPU materialized op (attention_forward / attention_backward) on the same inputs;
//   - itself: the backward run twice gives the same bits (no atomics).
// And the op contract: attention_forward with backend = fused on the GPU equals the materialized one.
#include <cmath>

#include "tests/ops/attention_tiled_test_util.h"

namespace attnlab::test {
namespace {

struct FusedCase {
  const char* name;
  AttnNorm norm;
  int variant;  // 0 standard, 1 differential with one λ, 2 differential with λ per head
  int64_t B, T, S, S_cap, Hq, Hkv, d, dv;
  bool causal, pad, controllers, captures;
  int64_t offset = -1;
};

const FusedCase kCases[] = {
    {"softmaxGqaPadCtrlCap", AttnNorm::softmax, 0, 2, 131, 137, 139, 6, 2, 64, 64, true, true, true, true},
    {"softmaxMhaT7", AttnNorm::softmax, 0, 1, 7, 7, 7, 3, 3, 128, 128, true, false, false, true},
    {"softmaxDecodeMaskedSeq", AttnNorm::softmax, 0, 2, 1, 293, 311, 6, 2, 128, 128, true, true, true, true},
    {"softmaxNonCausal", AttnNorm::softmax, 0, 2, 13, 11, 11, 5, 5, 64, 64, false, true, true, true, 0},
    {"linearGqaPadCap", AttnNorm::linear, 0, 2, 67, 67, 71, 6, 2, 64, 64, true, true, false, true},
    {"linearDecodeCtrl", AttnNorm::linear, 0, 3, 1, 79, 83, 4, 4, 128, 128, true, false, true, true},
    {"rampMhaPadCtrlCap", AttnNorm::ramp, 0, 2, 61, 67, 67, 3, 3, 128, 128, true, true, true, true},
    {"rampGqaT7", AttnNorm::ramp, 0, 1, 7, 7, 9, 6, 2, 64, 64, true, false, false, false},
    {"diffLayerSoftmaxDv2d", AttnNorm::softmax, 1, 2, 37, 37, 41, 4, 2, 64, 128, true, true, true, true},
    {"diffHeadSoftmaxOffset", AttnNorm::softmax, 2, 1, 7, 13, 13, 4, 4, 64, 64, true, false, false, false, 5},
    {"diffHeadLinearCtrl", AttnNorm::linear, 2, 2, 37, 43, 43, 6, 2, 64, 64, true, false, true, true},
    {"diffLayerRampCapDv2d", AttnNorm::ramp, 1, 2, 7, 7, 7, 2, 2, 128, 256, true, true, true, true},
    {"softmaxLongRows", AttnNorm::softmax, 0, 1, 3, 1031, 1031, 2, 1, 64, 64, true, false, false, true},
    {"rampLongRowsCtrl", AttnNorm::ramp, 0, 1, 2, 1021, 1023, 2, 2, 128, 128, true, false, true, false},
};

AttnProblem make(const FusedCase& c, DType dt) {
  AttnProblem p;
  p.spec.Hq = c.Hq, p.spec.Hkv = c.Hkv, p.spec.d = c.d, p.spec.dv = c.dv;
  p.spec.norm = c.norm, p.spec.ramp_alpha = 0.3, p.spec.causal = c.causal;
  p.spec.differential = c.variant != 0;
  p.nlambda = c.variant == 2 ? c.Hq : 1;
  p.B = c.B, p.T = c.T, p.S = c.S, p.S_cap = c.S_cap, p.offset = c.offset;
  if (c.pad) {
    p.key_len.resize(size_t(c.B));
    for (int64_t b = 0; b < c.B; ++b) p.key_len[size_t(b)] = int32_t(b == 0 ? c.S - c.S / 3 : (b == 1 ? 0 : c.S));
  }
  p.add = p.mul = c.controllers;
  p.randomize(2000 + uint64_t(c.T * 7 + c.S), 2.0);
  for (auto* v : {&p.q, &p.k, &p.v, &p.q2, &p.k2, &p.dout}) *v = round_as(dt, *v);
  for (auto* v : {&p.lam, &p.sadd, &p.smul}) *v = round_as(DType::f32, *v);
  return p;
}

AttnCaptureReq captures_of(const FusedCase& c) {
  AttnCaptureReq cap;
  if (!c.captures) return cap;
  cap.rows = c.T == 1 ? std::vector<int32_t>{0} : std::vector<int32_t>{int32_t(c.T - 1), 0, int32_t(c.T / 2)};
  cap.spans = {0, 3, 2, int32_t(c.S / 2), int32_t(c.S / 3), int32_t(c.S + 5)};
  cap.variance = true;
  cap.entropy = cap.kl = c.variant == 0;
  return cap;
}

// `factor` widens every tolerance when the reference carries rounding of its own (the GPU
// materialized op: each side may sit a full tolerance from the exact value).
void compare(const FusedCase& c, DType dt, const AttnOutputs& g, const AttnOutputs& r, const char* against,
             double factor = 1) {
  const double tol = factor * (dt == DType::bf16 ? 2e-2 : 2e-5);
  const double stat_tol = factor * (dt == DType::bf16 ? 5e-2 : 1e-4);
  auto cmp = [&](const char* name, const std::vector<double>& x, const std::vector<double>& y, double t) {
    if (x.empty() || y.empty()) return;  // not produced by one side (maps of the materialized op)
    ASSERT_EQ(x.size(), y.size()) << name;
    EXPECT_LT(rel_err(x, y), t) << c.name << " " << dtype_name(dt) << " " << name << " vs " << against;
  };
  cmp("o", g.o, r.o, tol);
  cmp("lse", g.lse, r.lse, factor * (dt == DType::bf16 ? 1e-2 : 1e-5));
  cmp("lse2", g.lse2, r.lse2, factor * (dt == DType::bf16 ? 1e-2 : 1e-5));
  cmp("row_sum", g.rsum, r.rsum, tol);
  cmp("row_sum2", g.rsum2, r.rsum2, tol);
  cmp("cap_scores", g.cap_scores, r.cap_scores, tol);
  cmp("cap_scores2", g.cap_scores2, r.cap_scores2, tol);
  cmp("cap_probs", g.cap_probs, r.cap_probs, tol);
  cmp("entropy", g.entropy, r.entropy, stat_tol);
  cmp("kl", g.kl, r.kl, stat_tol);
  cmp("variance", g.variance, r.variance, stat_tol);
  cmp("span_mass", g.span_mass, r.span_mass, tol);
  cmp("dq", g.dq, r.dq, tol);
  cmp("dk", g.dk, r.dk, tol);
  cmp("dv", g.dv, r.dv, tol);
  cmp("dq2", g.dq2, r.dq2, tol);
  cmp("dk2", g.dk2, r.dk2, tol);
  cmp("dlambda", g.dlambda, r.dlambda, tol);
  cmp("dtau", g.dmul, r.dmul, factor * (dt == DType::bf16 ? 3e-2 : 1e-4));
  if (!g.dadd.empty()) {
    // Mathematically zero for every normalising map (METHODS §4.3).
    double worst = 0, scale = 1;
    for (double x : g.dadd) worst = std::max(worst, std::isfinite(x) ? std::fabs(x) : INFINITY);
    for (double x : r.dmul) scale = std::max(scale, std::fabs(x));
    EXPECT_LT(worst, factor * 1e-3 * scale) << c.name;
  }
}

class AttentionFusedGpu : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(AttentionFusedGpu, MatchesCpuMaterialized) {
  ATTNLAB_REQUIRE_GPU();
  const auto [dt, idx] = GetParam();
  const FusedCase& c = kCases[idx];
  const AttnProblem pr = make(c, dt);
  const AttnCaptureReq cap = captures_of(c);
  const AttnOutputs g = run_tiled(pr, gpu_ctx(), dt, true, {}, c.captures ? &cap : nullptr);
  AttnProblem ref_pr = pr;
  const bool lin = c.norm == AttnNorm::linear || c.norm == AttnNorm::ramp;
  if (lin) {
    // Rounded scores can move the argmin between near-tied keys: the CPU backward takes the GPU's
    // choice (counted: few rows may differ in bf16, none in f32).
    const AttnOutputs fwd = pr.run(cpu_ctx(), DType::f64, false);
    size_t mismatch = 0;
    for (size_t i = 0; i < g.rmin.size(); ++i) mismatch += g.rmin[i] != fwd.rmin[i];
    if (dt == DType::f32) EXPECT_EQ(mismatch, 0u) << c.name;
    else EXPECT_LT(double(mismatch), 0.05 * double(g.rmin.size()) + 1) << c.name;
    ref_pr.override_rmin = g.rmin;
    if (pr.spec.differential) ref_pr.override_rmin2 = g.rmin2;
  }
  const AttnOutputs r = ref_pr.run(cpu_ctx(), DType::f64, true, c.captures ? &cap : nullptr);
  compare(c, dt, g, r, "CPU materialized f64");
}

TEST_P(AttentionFusedGpu, MatchesGpuMaterialized) {
  ATTNLAB_REQUIRE_GPU();
  const auto [dt, idx] = GetParam();
  const FusedCase& c = kCases[idx];
  const AttnProblem pr = make(c, dt);
  const AttnCaptureReq cap = captures_of(c);
  const AttnOutputs f = run_tiled(pr, gpu_ctx(), dt, true, {}, c.captures ? &cap : nullptr);
  AttnProblem m_pr = pr;
  if (c.norm == AttnNorm::linear || c.norm == AttnNorm::ramp) {
    m_pr.override_rmin = f.rmin;
    if (pr.spec.differential) m_pr.override_rmin2 = f.rmin2;
  }
  const AttnOutputs m = m_pr.run(gpu_ctx(), dt, true, c.captures ? &cap : nullptr);
  // Both carry their own rounding: twice the tolerance against the exact reference.
  compare(c, dt, f, m, "GPU materialized", 2);
}

TEST_P(AttentionFusedGpu, BackwardIsBitForBitDeterministic) {
  ATTNLAB_REQUIRE_GPU();
  const auto [dt, idx] = GetParam();
  const FusedCase& c = kCases[idx];
  const AttnProblem pr = make(c, dt);
  const AttnOutputs a = run_tiled(pr, gpu_ctx(), dt, true, {});
  const AttnOutputs b = run_tiled(pr, gpu_ctx(), dt, true, {});
  EXPECT_FALSE(a.dq.empty());
  for (auto [name, x, y] : {std::tuple{"o", &a.o, &b.o}, {"dq", &a.dq, &b.dq}, {"dk", &a.dk, &b.dk},
                            {"dv", &a.dv, &b.dv}, {"dq2", &a.dq2, &b.dq2}, {"dk2", &a.dk2, &b.dk2},
                            {"dlambda", &a.dlambda, &b.dlambda}, {"dtau", &a.dmul, &b.dmul}, {"da", &a.dadd, &b.dadd}})
    EXPECT_EQ(*x, *y) << c.name << " " << name;
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionFusedGpu,
                         ::testing::Combine(::testing::Values(DType::f32, DType::bf16),
                                            ::testing::Range(0, int(sizeof(kCases) / sizeof(kCases[0])))),
                         [](const auto& i) {
                           return std::string(dtype_name(std::get<0>(i.param))) + "_" + kCases[std::get<1>(i.param)].name;
                         });

// The op contract: attention_forward / attention_backward with backend = fused on the GPU.
TEST(AttentionFusedGpuContract, BackendFusedEqualsMaterializedThroughTheOp) {
  ATTNLAB_REQUIRE_GPU();
  const FusedCase& c = kCases[0];
  AttnProblem pr = make(c, DType::f32);
  Ctx& ctx = gpu_ctx();
  const AttentionSpec s = pr.spec;
  const int64_t B = pr.B, T = pr.T, S = pr.S, Sc = pr.S_cap, dv = pr.dv();
  auto mk = [&](DType t, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
    return make_tensor(ctx.device, t, dims, v);
  };
  Buffer q = mk(DType::f32, {B, s.Hq, T, s.d}, pr.q), k = mk(DType::f32, {B, s.Hkv, Sc, s.d}, pr.k);
  Buffer v = mk(DType::f32, {B, s.Hkv, Sc, dv}, pr.v), dout = mk(DType::f32, {B, s.Hq, T, dv}, pr.dout);
  Buffer kl = make_ids(ctx.device, {B}, pr.key_len);
  std::vector<double> outs[2], dqs[2];
  for (int be = 0; be < 2; ++be) {
    const AttentionBackend backend = be ? AttentionBackend::fused : AttentionBackend::materialized;
    Buffer o = make_poisoned(ctx.device, DType::f32, {B, s.Hq, T, dv}), lse = make_poisoned(ctx.device, DType::f32, {B, s.Hq, T});
    Buffer probs = be ? Buffer() : make_poisoned(ctx.device, DType::f32, {B, s.Hq, T, S});
    Buffer dq = make_poisoned(ctx.device, DType::f32, {B, s.Hq, T, s.d});
    const size_t ws = std::max(attention_backend_workspace_bytes(backend, s, B, T, S, DType::f32, false, false),
                               attention_backend_workspace_bytes(backend, s, B, T, S, DType::f32, true, false));
    Buffer w = make_poisoned(ctx.device, DType::f32, {int64_t(ws / 4 + 1)});
    AttentionArgs a;
    a.spec = s, a.backend = backend, a.keys = S;
    a.q = q.t(), a.k = k.t(), a.v = v.t(), a.key_lengths = kl.t(), a.out = o.t(), a.lse = lse.t();
    a.probs = probs.t(), a.workspace = w.t();
    attention_forward(ctx, a);
    AttentionBackwardArgs g;
    static_cast<AttentionInputs&>(g) = a;
    g.probs = probs.t(), g.lse = lse.t(), g.out = be ? o.t() : Tensor(), g.dout = dout.t(), g.dq = dq.t();
    g.workspace = w.t();
    attention_backward(ctx, g);
    outs[be] = to_host_f64(ctx, o.t());
    dqs[be] = to_host_f64(ctx, dq.t());
  }
  EXPECT_LT(rel_err(outs[1], outs[0]), 2e-5);
  EXPECT_LT(rel_err(dqs[1], dqs[0]), 2e-5);
}

}  // namespace
}  // namespace attnlab::test
