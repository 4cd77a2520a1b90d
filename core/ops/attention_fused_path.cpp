// The fused backend's kernel choice (core/ops/attention_fused_path.h): one predicate for the
// forward and the backward.
#include "core/ops/attention_fused_path.h"

#include <atomic>

#include "core/dispatch.h"

namespace attnlab {

const char* fused_path_name(FusedPath p) {
  switch (p) {
    case FusedPath::cpu: return "cpu";
    case FusedPath::warp: return "warp";
    case FusedPath::mma: return "mma";
  }
  return "?";
}

namespace {
std::atomic<bool> g_force_warp{false};
}  // namespace

void set_fused_force_warp(bool on) { g_force_warp.store(on); }
bool fused_force_warp() { return g_force_warp.load(); }

std::string fused_mma_refusal(const FusedPathQuery& q) {
  const AttentionSpec& s = q.spec;
  if (q.sm == 0) return "not a CUDA device";
  if (q.sm < 80) return "mma.sync bf16 needs sm_80 or newer (this GPU is sm_" + std::to_string(q.sm) + ")";
  if (q.dtype != DType::bf16) return std::string("the tensor-core kernels take bf16, not ") + dtype_name(q.dtype);
  if (s.d != 64 && s.d != 128) return "the tensor-core kernels take head dims 64 and 128";
  if (s.value_dim() != s.d) return "the tensor-core kernels take dv = d";
  if (s.norm == AttnNorm::relaxed_linear) return "the tensor-core kernels do not run relaxed_linear";
  if (s.differential) return "the tensor-core kernels do not run differential attention";
  if (s.dropout > 0) return "the fused backend has no attention dropout";
  if (q.captures) return "the tensor-core forward computes no statistics or captured rows";
  if (q.force_warp) return "the warp kernels are forced (set_fused_force_warp)";
  return "";
}

FusedPath fused_path(const FusedPathQuery& q) {
  if (q.sm == 0) return FusedPath::cpu;
  return fused_mma_refusal(q).empty() ? FusedPath::mma : FusedPath::warp;
}

namespace {

FusedPathQuery base_query(const AttentionInputs& a, int sm) {
  FusedPathQuery q;
  q.spec = a.spec;
  q.dtype = a.q.dtype;
  q.sm = sm;
  q.score_add = a.score_add.defined();
  q.score_mul = a.score_mul.defined();
  q.force_warp = fused_force_warp();
  return q;
}

}  // namespace

int fused_device_sm(const Ctx& ctx) {
  return ctx.is_cuda() ? ATTNLAB_CUDA_DISPATCH(cuda::attention_fused_device_sm(ctx)) : 0;
}

FusedPathQuery fused_path_query(const AttentionArgs& a, int sm) {
  FusedPathQuery q = base_query(a, sm);
  const AttentionCaptures& c = a.captures;
  q.captures = c.rows.defined() || c.scores.defined() || c.scores2.defined() || c.probs.defined() ||
               c.entropy.defined() || c.kl.defined() || c.variance.defined() || c.span_mass.defined();
  return q;
}

FusedPathQuery fused_path_query(const AttentionBackwardArgs& a, int sm) { return base_query(a, sm); }

FusedPath attention_fused_path(const Ctx& ctx, const AttentionArgs& a) {
  return fused_path(fused_path_query(a, fused_device_sm(ctx)));
}
FusedPath attention_fused_path(const Ctx& ctx, const AttentionBackwardArgs& a) {
  return fused_path(fused_path_query(a, fused_device_sm(ctx)));
}

}  // namespace attnlab
