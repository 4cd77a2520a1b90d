// Tiled attention dispatcher: resolves the shape from Q, K, V and the explicit key count S,
// validates every tensor against the spec, then runs the CPU reference.
#include "core/ops/attention_tiled.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/ops/attention_tiled_impl.h"

namespace attnlab {
namespace {

void need(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  CHECK(t.defined(), "attention_tiled: '", what, "' is required for this spec but undefined");
  CHECK(t.dtype == dt, "attention_tiled: '", what, "' (", t.name, ") must be ", dtype_name(dt), ", got ",
        dtype_name(t.dtype));
  check_shape(t, dims);
}
void maybe(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  if (t.defined()) need(t, dt, dims, what);
}

AttnShape resolve(const AttentionSpec& s, const Tensor& q, const Tensor& k, const Tensor& v, int64_t S,
                  int64_t query_offset, const AttentionTiles& tiles) {
  CHECK(s.Hq > 0 && s.Hkv > 0 && s.Hq % s.Hkv == 0, "attention_tiled: Hq (", s.Hq,
        ") must be a positive multiple of Hkv (", s.Hkv, ")");
  CHECK(s.d > 0 && s.value_dim() > 0, "attention_tiled: head dims must be positive, got d=", s.d, " dv=", s.dv);
  CHECK(s.norm != AttnNorm::ramp || (s.ramp_alpha >= 0 && s.ramp_alpha <= 1),
        "attention_tiled: ramp alpha must lie in [0, 1], got ", s.ramp_alpha);
  CHECK(std::isfinite(s.score_scale()), "attention_tiled: the score scale must be finite");
  CHECK(tiles.Br > 0 && tiles.Bc > 0, "attention_tiled: tile sizes must be positive, got Br=", tiles.Br,
        " Bc=", tiles.Bc);
  CHECK(q.defined() && k.defined() && v.defined() && q.ndim == 4 && k.ndim == 4 && v.ndim == 4,
        "attention_tiled: q, k and v are required, 4-d [B, H, rows, dim]");
  AttnShape sh;
  sh.B = q.dim(0), sh.Hq = s.Hq, sh.Hkv = s.Hkv, sh.G = s.Hq / s.Hkv, sh.T = q.dim(2);
  sh.S_cap = k.dim(2), sh.S = S, sh.d = s.d, sh.dv = s.value_dim(), sh.scale = s.score_scale();
  const DType dt = q.dtype;
  need(q, dt, {sh.B, sh.Hq, sh.T, sh.d}, "q");
  need(k, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "k");
  need(v, dt, {sh.B, sh.Hkv, sh.S_cap, sh.dv}, "v");
  CHECK(sh.B > 0 && sh.T > 0, "attention_tiled: B and T must be positive, got ", q.shape_str());
  CHECK(S >= 1 && S <= sh.S_cap, "attention_tiled: the key count S (", S, ") must lie in [1, S_cap = ", sh.S_cap,
        "]; set AttentionTiledArgs::S");
  sh.offset = query_offset < 0 ? S - sh.T : query_offset;
  CHECK(sh.offset >= 0, "attention_tiled: the query offset resolves to ", sh.offset, " (S = ", S, " < T = ", sh.T,
        "); pass query_offset explicitly");
  return sh;
}

void check_common(const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& q2, const Tensor& k2,
                  const Tensor& lambda, const Tensor& key_lengths, const Tensor& add, const Tensor& mul,
                  const Tensor& probs, const Tensor& probs2) {
  const DType acc = acc_dtype(dt);
  CHECK(!probs.defined() && !probs2.defined(),
        "attention_tiled: the tiled path stores no probability map; leave probs/probs2 undefined "
        "(use the materialized attention_forward for full maps, or captures.rows for chosen rows)");
  maybe(key_lengths, DType::i32, {sh.B}, "key_lengths");
  maybe(add, acc, {sh.B, sh.Hq, sh.T}, "score_add");
  maybe(mul, acc, {sh.B, sh.Hq, sh.T}, "score_mul");
  if (s.differential) {
    need(q2, dt, {sh.B, sh.Hq, sh.T, sh.d}, "q2");
    need(k2, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "k2");
    CHECK(lambda.defined() && lambda.ndim == 1 && lambda.dtype == acc && (lambda.dim(0) == 1 || lambda.dim(0) == sh.Hq),
          "attention_tiled: differential needs lambda as ", dtype_name(acc), " [1] or [Hq = ", sh.Hq, "]");
  } else {
    CHECK(!q2.defined() && !k2.defined() && !lambda.defined(),
          "attention_tiled: q2/k2/lambda are only for spec.differential");
  }
}

void check_stats(const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& lse, const Tensor& rmin,
                 const Tensor& rsum, const char* what) {
  const bool sm = s.norm == AttnNorm::softmax || s.norm == AttnNorm::ramp;
  const bool lin = s.norm == AttnNorm::linear || s.norm == AttnNorm::ramp;
  const DType acc = acc_dtype(dt);
  (sm ? need : maybe)(lse, acc, {sh.B, sh.Hq, sh.T}, what);
  (lin ? need : maybe)(rmin, DType::i32, {sh.B, sh.Hq, sh.T}, what);
  (lin ? need : maybe)(rsum, acc, {sh.B, sh.Hq, sh.T}, what);
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
  const DType dt = a.q.dtype, acc = acc_dtype(dt);
  check_common(s, sh, dt, a.q2, a.k2, a.lambda, a.key_lengths, a.score_add, a.score_mul, a.probs, a.probs2);
  need(a.out, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "out");
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, "lse/row_min/row_sum");
  if (s.differential) check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, "lse2/row_min2/row_sum2");
  check_parts(s, sh, dt, a.out, ta.out_parts, false);
  const AttentionCaptures& c = a.captures;
  if (c.rows.defined()) {
    CHECK(c.rows.dtype == DType::i32 && c.rows.ndim == 1, "attention_tiled: captures.rows must be i32 [nrows]");
    sh.nrows_capture = c.rows.dim(0);
  }
  CHECK(c.rows.defined() || (!c.scores.defined() && !c.scores2.defined() && !c.probs.defined()),
        "attention_tiled: score/probability captures need captures.rows");
  maybe(c.scores, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.scores");
  maybe(c.probs, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.probs");
  CHECK(!c.scores2.defined() || s.differential, "attention_tiled: captures.scores2 is for differential");
  maybe(c.scores2, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.scores2");
  const bool distribution = !s.differential && s.norm != AttnNorm::relaxed_linear;
  CHECK(distribution || (!c.entropy.defined() && !c.kl.defined()),
        "attention_tiled: entropy and KL need a probability distribution; not defined for ",
        s.differential ? "differential" : "relaxed_linear", " maps");
  maybe(c.entropy, acc, {sh.B, sh.Hq, sh.T}, "captures.entropy");
  maybe(c.kl, acc, {sh.B, sh.Hq, sh.T}, "captures.kl");
  maybe(c.variance, acc, {sh.B, sh.Hq, sh.T}, "captures.variance");
  CHECK(c.spans.defined() == c.span_mass.defined(), "attention_tiled: captures.spans and span_mass go together");
  if (c.spans.defined()) {
    CHECK(c.spans.dtype == DType::i32 && c.spans.ndim == 2 && c.spans.dim(1) == 2,
          "attention_tiled: captures.spans must be i32 [nspans, 2], got ", c.spans.shape_str());
    sh.nspans = c.spans.dim(0);
    need(c.span_mass, acc, {sh.B, sh.Hq, sh.T, sh.nspans}, "captures.span_mass");
  }
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
  const DType dt = a.q.dtype, acc = acc_dtype(dt);
  check_common(s, sh, dt, a.q2, a.k2, a.lambda, a.key_lengths, a.score_add, a.score_mul, a.probs, a.probs2);
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, "lse/row_min/row_sum");
  if (s.differential) check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, "lse2/row_min2/row_sum2");
  check_parts(s, sh, dt, ta.out, ta.out_parts, true);
  need(a.dout, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "dout");
  maybe(a.dq, dt, {sh.B, sh.Hq, sh.T, sh.d}, "dq");
  maybe(a.dk, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "dk");
  maybe(a.dv, dt, {sh.B, sh.Hkv, sh.S_cap, sh.dv}, "dv");
  CHECK(s.differential || (!a.dq2.defined() && !a.dk2.defined() && !a.dlambda.defined()),
        "attention_tiled: dq2/dk2/dlambda are only for spec.differential");
  maybe(a.dq2, dt, {sh.B, sh.Hq, sh.T, sh.d}, "dq2");
  maybe(a.dk2, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "dk2");
  if (a.dlambda.defined()) need(a.dlambda, acc, {a.lambda.dim(0)}, "dlambda");
  CHECK(!a.dscore_add.defined() || a.score_add.defined(), "attention_tiled: dscore_add without score_add");
  CHECK(!a.dscore_mul.defined() || a.score_mul.defined(), "attention_tiled: dscore_mul without score_mul");
  maybe(a.dscore_add, acc, {sh.B, sh.Hq, sh.T}, "dscore_add");
  maybe(a.dscore_mul, acc, {sh.B, sh.Hq, sh.T}, "dscore_mul");
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
