// The fused backend's kernel choice (core/ops/attention_fused_path.h): the one predicate the CUDA
// forward and backward share. An eligible call (bf16, sm_80+, softmax, linear or ramp, d = dv ∈ {64, 128},
// with or without per-row controllers, no captures, not differential) takes the tensor-core
// kernels; changing any one of those inputs sends it to the warp kernels with a reason; a forward
// and its backward built from the same inputs get the same answer; the CPU is its own path.
#include <gtest/gtest.h>

#include "core/ops/attention_fused_path.h"

namespace attnlab::test {
namespace {

FusedPathQuery eligible(int64_t d) {
  FusedPathQuery q;
  q.spec.Hq = 6, q.spec.Hkv = 2, q.spec.d = d, q.spec.dv = d;
  q.spec.norm = AttnNorm::softmax, q.spec.causal = true;
  q.dtype = DType::bf16;
  q.sm = 90;
  return q;
}

TEST(AttentionFusedPath, EligibleCallsTakeTheTensorCores) {
  for (int64_t d : {64, 128})
    for (int sm : {80, 86, 90}) {
      FusedPathQuery q = eligible(d);
      q.sm = sm;
      EXPECT_EQ(fused_mma_refusal(q), "") << "d " << d << " sm " << sm;
      EXPECT_EQ(fused_path(q), FusedPath::mma);
    }
  FusedPathQuery q = eligible(64);
  q.spec.causal = false;  // masks, GQA and offsets are the kernels' business, not the predicate's
  EXPECT_EQ(fused_path(q), FusedPath::mma);
  for (AttnNorm norm : {AttnNorm::linear, AttnNorm::ramp}) {
    q.spec.norm = norm;
    EXPECT_EQ(fused_path(q), FusedPath::mma) << attn_norm_name(norm);
  }
  q.score_add = q.score_mul = true;  // per-row controllers run on the tensor cores too
  EXPECT_EQ(fused_path(q), FusedPath::mma);
}

TEST(AttentionFusedPath, EachUnsupportedInputFallsBackToTheWarpKernels) {
  struct Edit {
    const char* what;
    void (*apply)(FusedPathQuery&);
  };
  const Edit edits[] = {
      {"sm_75", [](FusedPathQuery& q) { q.sm = 75; }},
      {"f32", [](FusedPathQuery& q) { q.dtype = DType::f32; }},
      {"d 96", [](FusedPathQuery& q) { q.spec.d = q.spec.dv = 96; }},
      {"dv 2d", [](FusedPathQuery& q) { q.spec.dv = 2 * q.spec.d; }},
      {"relaxed_linear", [](FusedPathQuery& q) { q.spec.norm = AttnNorm::relaxed_linear; }},
      {"differential", [](FusedPathQuery& q) { q.spec.differential = true; }},
      {"dropout", [](FusedPathQuery& q) { q.spec.dropout = 0.1; }},
      {"captures", [](FusedPathQuery& q) { q.captures = true; }},
      {"force_warp", [](FusedPathQuery& q) { q.force_warp = true; }},
  };
  for (const Edit& e : edits) {
    FusedPathQuery q = eligible(64);
    e.apply(q);
    EXPECT_NE(fused_mma_refusal(q), "") << e.what;
    EXPECT_EQ(fused_path(q), FusedPath::warp) << e.what;
  }
  FusedPathQuery cpu = eligible(64);
  cpu.sm = 0;
  EXPECT_EQ(fused_path(cpu), FusedPath::cpu);
  EXPECT_STREQ(fused_path_name(FusedPath::mma), "mma");
  EXPECT_STREQ(fused_path_name(FusedPath::warp), "warp");
}

// The queries built from a forward's and a backward's arguments agree whenever the forward has no
// captures; with captures only the forward leaves the tensor cores.
TEST(AttentionFusedPath, ForwardAndBackwardQueriesAgree) {
  float row_value = 0.5f;
  for (bool diff : {false, true})
    for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear}) {
      AttentionArgs f;
      AttentionBackwardArgs b;
      for (AttentionInputs* in : {static_cast<AttentionInputs*>(&f), static_cast<AttentionInputs*>(&b)}) {
        in->spec = eligible(128).spec;
        in->spec.norm = norm;
        in->q.dtype = DType::bf16;
        in->spec.differential = diff;
        in->score_add.data = &row_value;  // defined: only presence matters to the query
      }
      ASSERT_TRUE(f.score_add.defined() && b.score_add.defined());
      const FusedPath pf = fused_path(fused_path_query(f, 90)), pb = fused_path(fused_path_query(b, 90));
      EXPECT_EQ(pf, pb) << "differential " << diff << " norm " << attn_norm_name(norm);
      EXPECT_EQ(pf == FusedPath::mma, !diff && norm != AttnNorm::relaxed_linear);
      // the CPU context: the tiled reference whatever the spec
      EXPECT_EQ(attention_fused_path(Ctx{}, f), FusedPath::cpu);
      {
        ScopedFusedForceWarp w;
        EXPECT_TRUE(fused_path_query(f, 90).force_warp && fused_path_query(b, 90).force_warp);
        EXPECT_EQ(fused_path(fused_path_query(f, 90)), FusedPath::warp);
        EXPECT_EQ(fused_path(fused_path_query(b, 90)), FusedPath::warp);
      }
      EXPECT_FALSE(fused_force_warp());  // the scope restored it
    }
}

}  // namespace
}  // namespace attnlab::test
