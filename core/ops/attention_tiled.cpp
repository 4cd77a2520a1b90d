// Tiled attention dispatcher: resolves the shape from Q, K, V and the explicit key count S,
// validates every tensor against the spec, then runs the CPU reference.
#include "core/ops/attention_tiled.h"

#include <cmath>

#include "core/ops/attention_checks.h"
#include "core/dispatch.h"
#include "core/ops/attention_tiled_impl.h"

namespace attnlab {
namespace {

constexpr const char* kOp = "attention_tiled";

void need(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  attention_checks::required(kOp, t, dt, dims, what);
}

AttnShape resolve(const AttentionSpec& s, const Tensor& q, const Tensor& k, const Tensor& v, int64_t S,
                  int64_t query_offset, const AttentionTiles& tiles) {
  attention_checks::spec(kOp, s);
  CHECK(tiles.Br > 0 && tiles.Bc > 0, "attention_tiled: tile sizes must be positive, got Br=", tiles.Br,
        " Bc=", tiles.Bc);
  AttnShape sh = attention_checks::shape(kOp, s, q, k, v);
  sh.S = S;
  CHECK(S >= 1 && S <= sh.S_cap, "attention_tiled: the key count S (", S, ") must lie in [1, S_cap = ", sh.S_cap,
        "]; set AttentionTiledArgs::S");
  attention_checks::resolve_offset(kOp, sh, query_offset);
  return sh;
}

// The inputs; the tiled path keeps no probability map.
void check_common(const AttentionInputs& in, const AttentionSaved& saved, const AttnShape& sh, DType dt) {
  CHECK(!saved.probs.defined() && !saved.probs2.defined(),
        "attention_tiled: the tiled path stores no probability map; leave probs/probs2 undefined "
        "(use the materialized attention_forward for full maps, or captures.rows for chosen rows)");
  attention_checks::inputs(kOp, in, sh, dt);
}

// Both passes read lse (softmax, ramp) and the row min / sum (linear, ramp).
void check_stats(const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& lse, const Tensor& rmin,
                 const Tensor& rsum, const char* what) {
  attention_checks::stats(kOp, s, sh, dt, lse, rmin, rsum, s.norm == AttnNorm::softmax || s.norm == AttnNorm::ramp,
                          what);
}

void check_parts(const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& out, const Tensor& parts,
                 bool backward) {
  const int64_t np = attention_tiled_nparts(s);
  if (np > 1) need(parts, dt, {sh.B, sh.Hq, sh.T, np * sh.dv}, "out_parts");
  else CHECK(!parts.defined(), "attention_tiled: out_parts is only for ramp and differential (the output is the only part)");
  if (backward && np == 1) need(out, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "out (the forward's output)");
}

// On CUDA the kernels of cuda/attention_fused*.cu run what the support matrix admits.
void check_cuda(const AttentionSpec& s, DType dt) {
  const std::string why = attention_backend_support(AttentionBackend::fused, s, Device::cuda, dt);
  CHECK(why.empty(), "attention (fused): ", why, "; use impl: materialized (or auto)");
}

}  // namespace

int64_t attention_tiled_nparts(const AttentionSpec& s) {
  return (s.differential ? 2 : 1) * (s.norm == AttnNorm::ramp ? 2 : 1);
}

size_t attention_tiled_workspace_bytes(const AttentionSpec& spec, int64_t B, int64_t T, DType dt) {
  AttnShape sh;
  sh.B = B, sh.Hq = spec.Hq, sh.T = T, sh.d = spec.d;
  return tiled::backward_stats_bytes(sh, spec.differential ? 2 : 1, dt);
}

void attention_tiled_forward(Ctx& ctx, const AttentionTiledArgs& ta) {
  const AttentionArgs& a = ta.attn;
  const AttentionSpec& s = a.spec;
  AttnShape sh = resolve(s, a.q, a.k, a.v, ta.S, a.query_offset, ta.tiles);
  const DType dt = a.q.dtype;
  check_common(a, a, sh, dt);
  need(a.out, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "out");
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, "lse/row_min/row_sum");
  if (s.differential) check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, "lse2/row_min2/row_sum2");
  check_parts(s, sh, dt, a.out, ta.out_parts, false);
  const AttentionCaptures& c = a.captures;
  attention_checks::captures(kOp, c, s, sh, dt);
  check_device(ctx.device, {&a.q, &a.k, &a.v, &a.q2, &a.k2, &a.lambda, &a.key_lengths, &a.score_add, &a.score_mul,
                            &a.out, &a.lse, &a.row_min, &a.row_sum, &a.lse2, &a.row_min2, &a.row_sum2, &ta.out_parts});
  check_device(ctx.device, {&c.rows, &c.scores, &c.scores2, &c.probs, &c.entropy, &c.kl, &c.variance, &c.spans,
                            &c.span_mass});
  if (ctx.is_cuda()) {
    check_cuda(s, dt);
    CHECK(sh.nspans <= kAttentionFusedMaxSpans, "attention (fused, CUDA): at most ", kAttentionFusedMaxSpans,
          " spans per call are captured, got ", sh.nspans, "; capture fewer spans or use impl: materialized");
    return ATTNLAB_CUDA_DISPATCH(cuda::attention_fused_forward(ctx, ta, sh));
  }
  tiled::forward_cpu(ta, sh);
}

void attention_tiled_backward(Ctx& ctx, const AttentionTiledBackwardArgs& ta) {
  const AttentionBackwardArgs& a = ta.attn;
  const AttentionSpec& s = a.spec;
  AttnShape sh = resolve(s, a.q, a.k, a.v, ta.S, a.query_offset, ta.tiles);
  const DType dt = a.q.dtype;
  check_common(a, a, sh, dt);
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, "lse/row_min/row_sum");
  if (s.differential) check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, "lse2/row_min2/row_sum2");
  check_parts(s, sh, dt, ta.out, ta.out_parts, true);
  attention_checks::gradients(kOp, a, sh, dt);
  const size_t ws = attention_tiled_workspace_bytes(s, sh.B, sh.T, dt);
  CHECK(a.workspace.defined() && a.workspace.bytes() >= ws, "attention_tiled_backward: the workspace holds ",
        a.workspace.defined() ? a.workspace.bytes() : 0, " bytes, needs ", ws, " (attention_tiled_workspace_bytes)");
  check_device(ctx.device, {&a.q, &a.k, &a.v, &a.q2, &a.k2, &a.lambda, &a.key_lengths, &a.score_add, &a.score_mul,
                            &a.lse, &a.row_min, &a.row_sum, &a.lse2, &a.row_min2, &a.row_sum2, &a.dout});
  check_device(ctx.device, {&a.dq, &a.dk, &a.dv, &a.dq2, &a.dk2, &a.dlambda, &a.dscore_add, &a.dscore_mul,
                            &a.workspace, &ta.out, &ta.out_parts});
  if (ctx.is_cuda()) {
    check_cuda(s, dt);
    return ATTNLAB_CUDA_DISPATCH(cuda::attention_fused_backward(ctx, ta, sh));
  }
  tiled::backward_cpu(ta, sh);
}

}  // namespace attnlab
