// The tiled attention (CPU reference of the fused kernels) against the materialized op in double:
// every variant × controller, every mask path, GQA, tile sizes that divide neither T nor S, every
// saved statistic, capture and gradient within 1e-12 relative. Finite differences, the float path
// and input validation are in attention_tiled_fd_test.cpp.
#include <algorithm>
#include <tuple>

#include "tests/ops/attention_tiled_test_util.h"

namespace attnlab::test {
namespace {

enum class Variant { standard, diff_layer, diff_head };
enum class Ctrl { none, add, mul, both };
const char* variant_name(Variant v) {
  return v == Variant::standard ? "standard" : v == Variant::diff_layer ? "diffLayer" : "diffHead";
}
const char* ctrl_name(Ctrl c) {
  return c == Ctrl::none ? "plain" : c == Ctrl::add ? "add" : c == Ctrl::mul ? "mul" : "addMul";
}

// GQA (6 query heads on 2 kv heads), d = 5, dv = 7, T = 11 < S = 13 (KV-cache offset 2), a cache
// S_cap = 17 > S, causal, and key padding with one sequence of 6 keys and one of 0 keys (every
// row fully masked).
AttnProblem make_problem(AttnNorm norm, Variant var, Ctrl ctrl, uint64_t seed) {
  AttnProblem p;
  p.spec.Hq = 6, p.spec.Hkv = 2, p.spec.d = 5, p.spec.dv = 7;
  p.spec.norm = norm, p.spec.ramp_alpha = 0.35, p.spec.causal = true;
  p.spec.differential = var != Variant::standard;
  p.nlambda = var == Variant::diff_head ? p.spec.Hq : 1;
  p.B = 3, p.T = 11, p.S = 13, p.S_cap = 17;
  p.key_len = {13, 6, 0};
  p.add = ctrl == Ctrl::add || ctrl == Ctrl::both;
  p.mul = ctrl == Ctrl::mul || ctrl == Ctrl::both;
  p.randomize(seed, 1.5);
  return p;
}

AttnCaptureReq make_captures(const AttnProblem& p) {
  AttnCaptureReq c;
  c.rows = {0, 10, 5, 99};  // 99 is out of range: its slot stays untouched
  c.spans = {0, 3, 2, 9, 7, 40};
  c.variance = true;
  c.entropy = c.kl = !p.spec.differential && p.spec.norm != AttnNorm::relaxed_linear;
  return c;
}

using Param = std::tuple<AttnNorm, Variant, Ctrl>;
class AttentionTiledMatches : public ::testing::TestWithParam<Param> {};

TEST_P(AttentionTiledMatches, MaterializedForwardCapturesAndBackward) {
  auto [norm, var, ctrl] = GetParam();
  const AttnProblem pr = make_problem(norm, var, ctrl, 300 + int(norm) * 16 + int(var) * 4 + int(ctrl));
  const AttnCaptureReq cap = make_captures(pr);
  const AttnOutputs m = pr.run(cpu_ctx(), DType::f64, true, &cap);
  const AttnOutputs t = run_tiled(pr, cpu_ctx(), DType::f64, true, {4, 5}, &cap);
  expect_same_outputs(t, m, 1e-12, "Br=4 Bc=5");  // the poisoned slot of row 99 is checked untouched
}

INSTANTIATE_TEST_SUITE_P(
    Variants, AttentionTiledMatches,
    ::testing::Combine(::testing::Values(AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear),
                       ::testing::Values(Variant::standard, Variant::diff_layer, Variant::diff_head),
                       ::testing::Values(Ctrl::none, Ctrl::add, Ctrl::mul, Ctrl::both)),
    [](const auto& i) {
      return std::string(attn_norm_name(std::get<0>(i.param))) + "_" + variant_name(std::get<1>(i.param)) + "_" +
             ctrl_name(std::get<2>(i.param));
    });

// Tile shapes: 1×1 (every key its own tile), tiles that divide neither T nor S, tiles as large
// as the problem, and tiles larger than it; plus a non-causal MHA shape with an explicit offset.
TEST(AttentionTiledShapes, AnyTileSizeMatchesMaterialized) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    for (Variant var : {Variant::standard, Variant::diff_head}) {
      const AttnProblem pr = make_problem(norm, var, Ctrl::both, 500 + int(norm) * 3 + int(var));
      const AttnCaptureReq cap = make_captures(pr);
      const AttnOutputs m = pr.run(cpu_ctx(), DType::f64, true, &cap);
      for (AttentionTiles tl : {AttentionTiles{1, 1}, AttentionTiles{3, 7}, AttentionTiles{7, 2},
                                AttentionTiles{11, 13}, AttentionTiles{64, 64}}) {
        const std::string what = std::string(attn_norm_name(norm)) + " " + variant_name(var) + " Br=" +
                                 std::to_string(tl.Br) + " Bc=" + std::to_string(tl.Bc);
        expect_same_outputs(run_tiled(pr, cpu_ctx(), DType::f64, true, tl, &cap), m, 1e-12, what);
      }
    }
  }
}

TEST(AttentionTiledShapes, NonCausalMhaWithExplicitOffsetAndPadding) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear}) {
    AttnProblem pr;
    pr.spec.Hq = pr.spec.Hkv = 3, pr.spec.d = 7, pr.spec.causal = false, pr.spec.norm = norm;
    pr.spec.scale = 0.45, pr.spec.ramp_alpha = 0.8;
    pr.B = 2, pr.T = 5, pr.S = 19, pr.S_cap = 23, pr.offset = 3;
    pr.key_len = {17, 19};
    pr.mul = true;
    pr.randomize(71 + int(norm), 1.3);
    const AttnCaptureReq cap = make_captures(pr);
    const AttnOutputs m = pr.run(cpu_ctx(), DType::f64, true, &cap);
    expect_same_outputs(run_tiled(pr, cpu_ctx(), DType::f64, true, {2, 6}, &cap), m, 1e-12, attn_norm_name(norm));
  }
}

// A causal KV-cache decode-like call: T = 2 new queries on S = 29 cached keys with GQA 4:1 and
// an explicit offset of 27 (the default S − T): key tiles are skipped only where every row is masked.
TEST(AttentionTiledShapes, DecodeStepOnALongCache) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    AttnProblem pr;
    pr.spec.Hq = 4, pr.spec.Hkv = 1, pr.spec.d = 3, pr.spec.dv = 5, pr.spec.norm = norm;
    pr.spec.differential = true;
    pr.nlambda = 4;
    pr.B = 2, pr.T = 2, pr.S = 29, pr.S_cap = 31, pr.offset = 27;
    pr.add = true;
    pr.randomize(91 + int(norm), 1.7);
    const AttnCaptureReq cap = make_captures(pr);
    const AttnOutputs m = pr.run(cpu_ctx(), DType::f64, true, &cap);
    expect_same_outputs(run_tiled(pr, cpu_ctx(), DType::f64, true, {1, 8}, &cap), m, 1e-12, attn_norm_name(norm));
  }
}

// Tied scores: every key is duplicated (k_{2j+1} = k_{2j}), so each row's minimum is attained
// twice; row_min must be the first index, as the materialized op defines it, and the backward
// must put the argmin subgradient on that key.
TEST(AttentionTiledShapes, TiedMinimumPicksTheFirstIndex) {
  for (AttnNorm norm : {AttnNorm::linear, AttnNorm::ramp}) {
    AttnProblem pr = make_problem(norm, Variant::diff_layer, Ctrl::both, 612 + int(norm));
    const int64_t d = pr.spec.d;
    for (auto* k : {&pr.k, &pr.k2})
      for (int64_t bh = 0; bh < pr.B * pr.spec.Hkv; ++bh)
        for (int64_t j = 0; j + 1 < pr.S_cap; j += 2)
          std::copy_n(k->begin() + (bh * pr.S_cap + j) * d, d, k->begin() + (bh * pr.S_cap + j + 1) * d);
    const AttnOutputs m = pr.run(cpu_ctx(), DType::f64, true);
    const AttnOutputs t = run_tiled(pr, cpu_ctx(), DType::f64, true, {4, 3});
    int64_t tied = 0;
    for (double i : m.rmin) tied += i >= 0 && int64_t(i) % 2 == 0;
    EXPECT_GT(tied, int64_t(m.rmin.size() / 2)) << "the duplicated keys should make most minima ties";
    expect_same_outputs(t, m, 1e-12, attn_norm_name(norm));
  }
}

// Large enough (rows·S > 2^16) for both implementations to take their OpenMP paths.
TEST(AttentionTiledShapes, LargeShapeOnTheParallelPath) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::ramp}) {
    AttnProblem pr;
    pr.spec.Hq = 4, pr.spec.Hkv = 2, pr.spec.d = 16, pr.spec.dv = 17, pr.spec.norm = norm;
    pr.spec.differential = norm == AttnNorm::ramp;
    pr.B = 1, pr.T = 131, pr.S = 523, pr.S_cap = 523;
    pr.mul = true;
    pr.randomize(41 + int(norm), 1.0);
    AttnCaptureReq cap;
    cap.rows = {0, 130};
    cap.variance = true;
    cap.entropy = cap.kl = !pr.spec.differential;
    const AttnOutputs m = pr.run(cpu_ctx(), DType::f64, true, &cap);
    expect_same_outputs(run_tiled(pr, cpu_ctx(), DType::f64, true, {32, 64}, &cap), m, 1e-12, attn_norm_name(norm));
  }
}

// The backward is deterministic: two runs give the same bits.
TEST(AttentionTiledShapes, BackwardIsDeterministic) {
  const AttnProblem pr = make_problem(AttnNorm::ramp, Variant::diff_head, Ctrl::both, 77);
  const AttnOutputs a = run_tiled(pr, cpu_ctx(), DType::f64, true, {4, 3});
  const AttnOutputs b = run_tiled(pr, cpu_ctx(), DType::f64, true, {4, 3});
  for (auto [x, y] : {std::pair{&a.dq, &b.dq}, {&a.dk, &b.dk}, {&a.dv, &b.dv}, {&a.dq2, &b.dq2}, {&a.dk2, &b.dk2},
                      {&a.dlambda, &b.dlambda}, {&a.dmul, &b.dmul}})
    EXPECT_EQ(*x, *y);
}

}  // namespace
}  // namespace attnlab::test
