// The fused attention's tensor-core path (cuda/attention_fused_mma_*.cu: bf16 mma.sync, softmax,
// linear and ramp, d = dv ∈ {64, 128}), reached through the tiled entry points with a CUDA context, on odd and prime
// T, S and batch, GQA and MHA, causal and not, key padding with a fully masked sequence, KV-cache
// offsets and decoding (T = 1), per-row controllers (dτ, da):
//   - the path query says mma for these calls (controllers included), and warp for f32,
//     differential, captures or forced;
//   - linear and ramp: the argmin may move between near-tied keys under bf16 rounding (counted, a few rows),
//     the CPU backward then takes the GPU's argmin;
//   - forward and backward against the CPU materialized op in f64 on the bf16-rounded inputs;
//   - against the warp kernels on the same inputs (set_fused_force_warp);
//   - the backward run twice gives the same bits (no atomics);
//   - a forward with captures takes the warp kernels and its backward the mma ones: still right.
#include <algorithm>
#include <cmath>

#include "core/ops/attention_fused_path.h"
#include "tests/ops/attention_tiled_test_util.h"

namespace attnlab::test {
namespace {

struct MmaCase {
  const char* name;
  AttnNorm norm;
  int64_t B, T, S, S_cap, Hq, Hkv, d;
  bool causal, pad;
  int64_t offset = -1;
  bool ctrl = false;  // per-row controllers a and τ
};

const MmaCase kCases[] = {
    {"gqaPadT131", AttnNorm::softmax, 3, 131, 137, 139, 6, 2, 64, true, true},
    {"mhaT7d128", AttnNorm::softmax, 1, 7, 7, 7, 3, 3, 128, true, false},
    {"decodeGqaPadD128", AttnNorm::softmax, 3, 1, 293, 311, 4, 2, 128, true, true},
    {"nonCausalPrime", AttnNorm::softmax, 3, 67, 61, 61, 5, 5, 64, false, true, 0},
    {"chunkOffsetMqaD128", AttnNorm::softmax, 2, 37, 101, 103, 4, 1, 128, true, false},
    {"longRowsT257", AttnNorm::softmax, 1, 257, 1031, 1031, 2, 1, 64, true, false},
    {"tinyT1S1", AttnNorm::softmax, 1, 1, 1, 3, 2, 1, 64, true, false},
    {"linearGqaPadT131", AttnNorm::linear, 3, 131, 137, 139, 6, 2, 64, true, true},
    {"linearMhaT7d128", AttnNorm::linear, 1, 7, 7, 7, 3, 3, 128, true, false},
    {"linearDecodePadD128", AttnNorm::linear, 3, 1, 293, 311, 4, 2, 128, true, true},
    {"linearNonCausalPrime", AttnNorm::linear, 3, 67, 61, 61, 5, 5, 64, false, true, 0},
    {"linearLongRowsT257", AttnNorm::linear, 1, 257, 1031, 1031, 2, 1, 128, true, false},
    {"ctrlSoftmaxGqaPad", AttnNorm::softmax, 3, 61, 67, 71, 6, 2, 64, true, true, -1, true},
    {"ctrlLinearD128", AttnNorm::linear, 2, 37, 43, 43, 4, 2, 128, true, false, -1, true},
    {"ctrlLinearPadPrime", AttnNorm::linear, 3, 29, 31, 37, 3, 1, 64, true, true, -1, true},
    {"rampGqaPadT131", AttnNorm::ramp, 3, 131, 137, 139, 6, 2, 64, true, true},
    {"rampMhaT7d128", AttnNorm::ramp, 1, 7, 7, 7, 3, 3, 128, true, false},
    {"rampDecodeCtrlD128", AttnNorm::ramp, 3, 1, 293, 311, 4, 2, 128, true, true, -1, true},
    {"rampNonCausalCtrl", AttnNorm::ramp, 2, 41, 43, 47, 4, 4, 64, false, false, 0, true},
};

AttnProblem make(const MmaCase& c) {
  AttnProblem p;
  p.spec.Hq = c.Hq, p.spec.Hkv = c.Hkv, p.spec.d = c.d, p.spec.dv = c.d;
  p.spec.norm = c.norm, p.spec.causal = c.causal, p.spec.ramp_alpha = 0.3;
  p.B = c.B, p.T = c.T, p.S = c.S, p.S_cap = c.S_cap, p.offset = c.offset;
  if (c.pad) {
    p.key_len.resize(size_t(c.B));
    for (int64_t b = 0; b < c.B; ++b) p.key_len[size_t(b)] = int32_t(b == 0 ? c.S - c.S / 3 : (b == 1 ? 0 : c.S));
  }
  p.add = p.mul = c.ctrl;
  p.randomize(4100 + uint64_t(c.T * 11 + c.S), 2.0);
  for (auto* v : {&p.q, &p.k, &p.v, &p.dout}) *v = round_as(DType::bf16, *v);
  for (auto* v : {&p.sadd, &p.smul}) *v = round_as(DType::f32, *v);
  return p;
}

AttentionArgs args_of(const AttnProblem& p, DType dt) {
  AttentionArgs a;
  a.spec = p.spec;
  a.q.dtype = dt;
  return a;
}

// bf16 outputs and gradients (inputs exact in bf16, fp32 accumulation, P rounded to bf16 for P·V).
void compare(const char* name, const AttnOutputs& g, const AttnOutputs& r, const char* against, double factor) {
  auto cmp = [&](const char* what, const std::vector<double>& x, const std::vector<double>& y, double tol) {
    ASSERT_FALSE(x.empty()) << what;
    ASSERT_EQ(x.size(), y.size()) << what;
    EXPECT_LT(rel_err(x, y), factor * tol) << name << " " << what << " vs " << against;
  };
  cmp("o", g.o, r.o, 2e-2);
  if (!r.lse.empty()) cmp("lse", g.lse, r.lse, 1e-2);
  if (!r.rsum.empty()) cmp("row_sum", g.rsum, r.rsum, 2e-2);
  cmp("dq", g.dq, r.dq, 3e-2);
  cmp("dk", g.dk, r.dk, 3e-2);
  cmp("dv", g.dv, r.dv, 2e-2);
  if (!r.dmul.empty()) cmp("dtau", g.dmul, r.dmul, 3e-2);
  if (!r.dadd.empty()) {
    // Mathematically zero for every normalising map (METHODS §4.3): the kernels write 0.
    ASSERT_EQ(g.dadd.size(), r.dadd.size());
    double worst = 0, scale = 1;
    for (double x : g.dadd) worst = std::max(worst, std::isfinite(x) ? std::fabs(x) : INFINITY);
    for (double x : r.dmul) scale = std::max(scale, std::fabs(x));
    EXPECT_LT(worst, factor * 1e-3 * scale) << name << " da vs " << against;
  }
}

class AttentionFusedMmaGpu : public ::testing::TestWithParam<int> {};

TEST_P(AttentionFusedMmaGpu, PathQueryPicksTheTensorCores) {
  ATTNLAB_REQUIRE_GPU();
  const MmaCase& c = kCases[GetParam()];
  const AttnProblem pr = make(c);
  Ctx& ctx = gpu_ctx();
  const int sm = fused_device_sm(ctx);
  if (sm < 80) GTEST_SKIP() << "the tensor-core path needs sm_80+, this GPU is sm_" << sm;
  AttentionArgs a = args_of(pr, DType::bf16);
  AttentionArgs diff = a;
  diff.spec.differential = true;
  EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, diff)), "warp");
  AttentionBackwardArgs b;
  static_cast<AttentionInputs&>(b) = a;
  EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, a)), "mma") << fused_mma_refusal(fused_path_query(a, sm));
  EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, b)), "mma");
  EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, args_of(pr, DType::f32))), "warp");
  {
    ScopedFusedForceWarp w;
    EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, a)), "warp");
  }
  float val = 1.f;
  a.score_mul.data = &val;  // presence is what the predicate reads: controllers stay on tensor cores
  EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, a)), "mma");
  a.captures.entropy.data = &val;  // captures do not
  EXPECT_STREQ(fused_path_name(attention_fused_path(ctx, a)), "warp");
}

TEST_P(AttentionFusedMmaGpu, MatchesCpuMaterialized) {
  ATTNLAB_REQUIRE_GPU();
  const MmaCase& c = kCases[GetParam()];
  const AttnProblem pr = make(c);
  const AttnOutputs g = run_tiled(pr, gpu_ctx(), DType::bf16, true, {});
  AttnProblem ref_pr = pr;
  if (c.norm == AttnNorm::linear || c.norm == AttnNorm::ramp) {
    // Rounded scores can move the argmin between near-tied keys: the CPU backward takes the GPU's
    // choice (counted: a few rows at most).
    const AttnOutputs fwd = pr.run(cpu_ctx(), DType::f64, false);
    ASSERT_EQ(g.rmin.size(), fwd.rmin.size());
    size_t mismatch = 0;
    for (size_t i = 0; i < g.rmin.size(); ++i) mismatch += g.rmin[i] != fwd.rmin[i];
    EXPECT_LT(double(mismatch), 0.05 * double(g.rmin.size()) + 1) << c.name;
    ref_pr.override_rmin = g.rmin;
  }
  const AttnOutputs r = ref_pr.run(cpu_ctx(), DType::f64, true);
  compare(c.name, g, r, "CPU materialized f64", 1);
}

TEST_P(AttentionFusedMmaGpu, MatchesWarpKernels) {
  ATTNLAB_REQUIRE_GPU();
  const MmaCase& c = kCases[GetParam()];
  const AttnProblem pr = make(c);
  const AttnOutputs m = run_tiled(pr, gpu_ctx(), DType::bf16, true, {});
  AttnOutputs w;
  {
    ScopedFusedForceWarp force;
    w = run_tiled(pr, gpu_ctx(), DType::bf16, true, {});
  }
  // Linear / ramp: each path picks its own argmin; where a near tie falls differently the argmin
  // term of the gradient lands on another key (dQ of that row, dK of both keys), so the gradients
  // are compared only when the paths agree on every argmin (counted: a few rows at most).
  size_t moved = 0;
  for (size_t i = 0; i < m.rmin.size() && i < w.rmin.size(); ++i) moved += m.rmin[i] != w.rmin[i];
  EXPECT_LT(double(moved), 0.05 * double(m.rmin.size()) + 1) << c.name;
  if (moved == 0) {
    compare(c.name, m, w, "warp kernels", 2);  // both carry their own rounding
    return;
  }
  EXPECT_LT(rel_err(m.o, w.o), 4e-2) << c.name << " o vs warp kernels (" << moved << " argmins differ)";
  EXPECT_LT(rel_err(m.dv, w.dv), 4e-2) << c.name << " dv vs warp kernels (" << moved << " argmins differ)";
}

TEST_P(AttentionFusedMmaGpu, BackwardIsBitForBitDeterministic) {
  ATTNLAB_REQUIRE_GPU();
  const MmaCase& c = kCases[GetParam()];
  const AttnProblem pr = make(c);
  const AttnOutputs a = run_tiled(pr, gpu_ctx(), DType::bf16, true, {});
  const AttnOutputs b = run_tiled(pr, gpu_ctx(), DType::bf16, true, {});
  ASSERT_FALSE(a.dq.empty());
  EXPECT_EQ(a.o, b.o) << c.name;
  EXPECT_EQ(a.lse, b.lse) << c.name;
  EXPECT_EQ(a.rsum, b.rsum) << c.name;
  EXPECT_EQ(a.rmin, b.rmin) << c.name;
  EXPECT_EQ(a.dq, b.dq) << c.name;
  EXPECT_EQ(a.dk, b.dk) << c.name;
  EXPECT_EQ(a.dv, b.dv) << c.name;
  EXPECT_EQ(a.dmul, b.dmul) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionFusedMmaGpu, ::testing::Range(0, int(sizeof(kCases) / sizeof(kCases[0]))),
                         [](const auto& i) { return std::string(kCases[i.param].name); });

// Captures keep the forward on the warp kernels; the backward (no captures) takes the tensor
// cores and reads the warp forward's lse.
TEST(AttentionFusedMmaGpuMixed, CapturedForwardThenMmaBackward) {
  ATTNLAB_REQUIRE_GPU();
  const MmaCase& c = kCases[0];
  const AttnProblem pr = make(c);
  AttnCaptureReq cap;
  cap.rows = {int32_t(c.T - 1), 0, int32_t(c.T / 2)};
  cap.entropy = cap.variance = true;
  const AttnOutputs g = run_tiled(pr, gpu_ctx(), DType::bf16, true, {}, &cap);
  const AttnOutputs r = pr.run(cpu_ctx(), DType::f64, true, &cap);
  compare(c.name, g, r, "CPU materialized f64 (captured forward)", 1);
  EXPECT_LT(rel_err(g.entropy, r.entropy), 5e-2);
  EXPECT_LT(rel_err(g.cap_probs, r.cap_probs), 2e-2);
}

}  // namespace
}  // namespace attnlab::test
