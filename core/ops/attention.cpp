// Attention dispatcher: resolves the shape, validates every tensor against the spec, then runs the
// CPU implementation (attention_cpu.cpp) or the CUDA one (cuda/attention*.cu).
#include "core/ops/attention.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/dropout.h"

namespace attnlab {

const char* attn_norm_name(AttnNorm n) {
  switch (n) {
    case AttnNorm::softmax: return "softmax";
    case AttnNorm::linear: return "linear";
    case AttnNorm::ramp: return "ramp";
    case AttnNorm::relaxed_linear: return "relaxed_linear";
  }
  return "?";
}

const char* attention_backend_name(AttentionBackend b) {
  switch (b) {
    case AttentionBackend::materialized: return "materialized";
    case AttentionBackend::fused: return "fused";
  }
  return "?";
}

std::string attention_backend_support(AttentionBackend backend, const AttentionSpec& spec, Device device, DType dt) {
  switch (backend) {
    case AttentionBackend::materialized:
      return "";  // every spec, both devices, every compute dtype the device has
    case AttentionBackend::fused:
      return "the fused (flash-style) attention kernels are not built yet; use impl: materialized";
  }
  return "unknown attention backend";
}

double AttentionSpec::score_scale() const { return scale != 0 ? scale : 1.0 / std::sqrt(double(d)); }

namespace {

size_t align256(size_t x) { return (x + 255) & ~size_t(255); }

void check_spec(const AttentionSpec& s) {
  CHECK(s.Hq > 0 && s.Hkv > 0 && s.Hq % s.Hkv == 0, "attention: Hq (", s.Hq,
        ") must be a positive multiple of Hkv (", s.Hkv, ")");
  CHECK(s.d > 0 && s.value_dim() > 0, "attention: head dims must be positive, got d=", s.d,
        " dv=", s.dv);
  CHECK(s.norm != AttnNorm::ramp || (s.ramp_alpha >= 0 && s.ramp_alpha <= 1),
        "attention: ramp alpha must lie in [0, 1], got ", s.ramp_alpha);
  CHECK(std::isfinite(s.score_scale()), "attention: the score scale must be finite");
  CHECK(s.dropout >= 0 && s.dropout < 1, "attention: dropout must lie in [0, 1), got ", s.dropout);
}

void check_t(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  CHECK(t.defined(), "attention: '", what, "' is required for this spec but undefined");
  CHECK(t.dtype == dt, "attention: '", what, "' (", t.name, ") must be ", dtype_name(dt), ", got ",
        dtype_name(t.dtype));
  check_shape(t, dims);
}
void check_opt(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  if (t.defined()) check_t(t, dt, dims, what);
}

// Shape from Q, K, V and the key count (explicit; 0: the saved map's last dim when a map is given,
// else S_cap).
AttnShape resolve(const AttentionInputs& in, const Tensor& probs) {
  const AttentionSpec& s = in.spec;
  const Tensor &q = in.q, &k = in.k, &v = in.v;
  check_spec(s);
  const std::string why = attention_backend_support(in.backend, s, q.defined() ? q.device : Device::cpu, q.dtype);
  CHECK(why.empty(), "attention: backend '", attention_backend_name(in.backend), "': ", why);
  CHECK(q.defined() && k.defined() && v.defined(), "attention: q, k and v are required");
  CHECK(q.ndim == 4 && k.ndim == 4 && v.ndim == 4, "attention: q, k and v must be 4-d [B, H, rows, dim]");
  AttnShape sh;
  sh.B = q.dim(0);
  sh.Hq = s.Hq;
  sh.Hkv = s.Hkv;
  sh.G = s.Hq / s.Hkv;
  sh.T = q.dim(2);
  sh.S_cap = k.dim(2);
  sh.S = in.keys > 0 ? in.keys : probs.defined() && probs.ndim == 4 ? probs.dim(3) : sh.S_cap;
  sh.d = s.d;
  sh.dv = s.value_dim();
  sh.scale = s.score_scale();
  const DType dt = q.dtype;
  check_t(q, dt, {sh.B, sh.Hq, sh.T, sh.d}, "q");
  check_t(k, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "k");
  check_t(v, dt, {sh.B, sh.Hkv, sh.S_cap, sh.dv}, "v");
  CHECK(sh.B > 0 && sh.T > 0, "attention: B and T must be positive, got ", q.shape_str());
  CHECK(sh.S >= 1 && sh.S <= sh.S_cap, "attention: keys (S = ", sh.S, ") must lie in [1, S_cap = ", sh.S_cap, "]");
  sh.offset = in.query_offset < 0 ? sh.S - sh.T : in.query_offset;
  CHECK(sh.offset >= 0, "attention: the query offset resolves to ", sh.offset,
        " (S = ", sh.S, " < T = ", sh.T, "); pass query_offset explicitly");
  return sh;
}

// The inputs and the saved maps (required: the backward reads them; optional in the forward).
void check_common(const AttentionInputs& in, const AttentionSaved& saved, const AttnShape& sh, DType dt,
                  bool maps_required) {
  const AttentionSpec& s = in.spec;
  const Tensor &q2 = in.q2, &k2 = in.k2, &lambda = in.lambda, &probs2 = saved.probs2;
  const Tensor &key_lengths = in.key_lengths, &score_add = in.score_add, &score_mul = in.score_mul;
  const DType acc = acc_dtype(dt);
  (maps_required ? check_t : check_opt)(saved.probs, dt, {sh.B, sh.Hq, sh.T, sh.S}, "probs");
  check_opt(key_lengths, DType::i32, {sh.B}, "key_lengths");
  check_opt(score_add, acc, {sh.B, sh.Hq, sh.T}, "score_add");
  check_opt(score_mul, acc, {sh.B, sh.Hq, sh.T}, "score_mul");
  if (s.differential) {
    check_t(q2, dt, {sh.B, sh.Hq, sh.T, sh.d}, "q2");
    check_t(k2, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "k2");
    (maps_required ? check_t : check_opt)(probs2, dt, {sh.B, sh.Hq, sh.T, sh.S}, "probs2");
    CHECK(saved.probs.defined() == probs2.defined(), "attention: keep both differential maps or neither");
    CHECK(lambda.defined() && lambda.ndim == 1 && lambda.dtype == acc &&
              (lambda.dim(0) == 1 || lambda.dim(0) == sh.Hq),
          "attention: differential needs lambda as ", dtype_name(acc), " [1] or [Hq = ", sh.Hq,
          "], got ", lambda.defined() ? dtype_name(lambda.dtype) : "undefined",
          lambda.defined() ? lambda.shape_str() : "");
  } else {
    CHECK(!q2.defined() && !k2.defined() && !probs2.defined() && !lambda.defined(),
          "attention: q2/k2/probs2/lambda are only for spec.differential");
  }
}

void check_stats(const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& lse,
                 const Tensor& row_min, const Tensor& row_sum, bool backward, const char* map) {
  const DType acc = acc_dtype(dt);
  const bool need_lse = s.norm == AttnNorm::ramp || (!backward && s.norm == AttnNorm::softmax);
  const bool need_min = s.norm == AttnNorm::linear || s.norm == AttnNorm::ramp;
  (need_lse ? check_t : check_opt)(lse, acc, {sh.B, sh.Hq, sh.T}, map);
  (need_min ? check_t : check_opt)(row_min, DType::i32, {sh.B, sh.Hq, sh.T}, map);
  (need_min ? check_t : check_opt)(row_sum, acc, {sh.B, sh.Hq, sh.T}, map);
}

void check_workspace(const Tensor& ws, const AttnWorkspace& lay, const char* pass) {
  if (lay.total == 0) return;
  CHECK(ws.defined() && ws.bytes() >= lay.total, "attention ", pass, ": the workspace holds ",
        ws.defined() ? ws.bytes() : 0, " bytes, needs ", lay.total,
        " (attention_workspace_bytes)");
}

}  // namespace

AttnWorkspace attention_workspace_layout(const AttentionSpec& spec, const AttnShape& sh, DType dt,
                                         bool backward, bool has_score_mul, bool maps_in_workspace) {
  AttnWorkspace w;
  w.map_bytes = align256(size_t(sh.map_elems()) * dtype_size(dt));
  if (!backward) w.nmaps = spec.differential ? 1 : 0;
  else if (spec.differential) w.nmaps = 3;
  else w.nmaps = 1 + (attention_backward_needs_scores(spec, has_score_mul) ? 1 : 0);
  w.partials_off = w.map_bytes * size_t(w.nmaps);
  w.total = w.partials_off;
  if (backward && spec.differential) w.total += align256(size_t(sh.rows()) * dtype_size(acc_dtype(dt)));
  w.kept_maps_off = w.total;
  if (!backward && maps_in_workspace) w.total += w.map_bytes * (spec.differential ? 2 : 1);
  w.dropped_off = w.total;
  if (spec.dropout > 0) w.total += w.map_bytes;
  return w;
}

void attention_drop_map(Ctx& ctx, const AttentionSpec& spec, const AttnShape& sh, DType dt, void* dst,
                        const void* src, uint64_t offset) {
  const int64_t n = sh.map_elems();
  DropoutArgs d;
  d.y = Tensor(dst, dt, ctx.device, {n}, "attention.dropped_probs");
  d.x = Tensor(const_cast<void*>(src), dt, ctx.device, {n}, "attention.probs");
  d.p = spec.dropout;
  d.rng_offset = offset;
  dropout_forward(ctx, d);
}

size_t attention_workspace_bytes(const AttentionSpec& spec, int64_t B, int64_t T, int64_t S,
                                 DType dt, bool backward, bool has_score_mul, bool maps_in_workspace) {
  AttnShape sh;
  sh.B = B;
  sh.Hq = spec.Hq;
  sh.T = T;
  sh.S = S;
  return attention_workspace_layout(spec, sh, dt, backward, has_score_mul, maps_in_workspace).total;
}

void attention_forward(Ctx& ctx, const AttentionArgs& args) {
  NVTX_RANGE(ctx, "attention_forward");
  const AttentionSpec& s = args.spec;
  AttnShape sh = resolve(args, args.probs);
  const DType dt = args.q.dtype, acc = acc_dtype(dt);
  check_common(args, args, sh, dt, false);
  const bool maps_in_workspace = !args.probs.defined();
  CHECK(s.dropout == 0 || !maps_in_workspace, "attention: dropout is for training: keep the probability maps "
        "(pass probs) so the backward can regenerate the dropped map");
  AttentionArgs a = args;
  check_t(a.out, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "out");
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, false, "lse/row_min/row_sum");
  if (s.differential)
    check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, false, "lse2/row_min2/row_sum2");

  const AttentionCaptures& c = a.captures;
  if (c.rows.defined()) {
    CHECK(c.rows.dtype == DType::i32 && c.rows.ndim == 1, "attention: captures.rows must be i32 [nrows]");
    sh.nrows_capture = c.rows.dim(0);
  }
  CHECK(c.rows.defined() || (!c.scores.defined() && !c.scores2.defined() && !c.probs.defined()),
        "attention: score/probability captures need captures.rows");
  check_opt(c.scores, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.scores");
  check_opt(c.probs, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.probs");
  CHECK(!c.scores2.defined() || s.differential, "attention: captures.scores2 is for differential");
  check_opt(c.scores2, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.scores2");
  const bool distribution = !s.differential && s.norm != AttnNorm::relaxed_linear;
  CHECK(distribution || (!c.entropy.defined() && !c.kl.defined()),
        "attention: entropy and KL need a probability distribution; not defined for ",
        s.differential ? "differential" : "relaxed_linear", " maps");
  check_opt(c.entropy, acc, {sh.B, sh.Hq, sh.T}, "captures.entropy");
  check_opt(c.kl, acc, {sh.B, sh.Hq, sh.T}, "captures.kl");
  check_opt(c.variance, acc, {sh.B, sh.Hq, sh.T}, "captures.variance");
  CHECK(c.spans.defined() == c.span_mass.defined(), "attention: captures.spans and span_mass go together");
  if (c.spans.defined()) {
    CHECK(c.spans.dtype == DType::i32 && c.spans.ndim == 2 && c.spans.dim(1) == 2,
          "attention: captures.spans must be i32 [nspans, 2], got ", c.spans.shape_str());
    sh.nspans = c.spans.dim(0);
    check_t(c.span_mass, acc, {sh.B, sh.Hq, sh.T, sh.nspans}, "captures.span_mass");
  }

  AttnWorkspace lay = attention_workspace_layout(s, sh, dt, false, a.score_mul.defined(), maps_in_workspace);
  check_workspace(a.workspace, lay, "forward");
  if (maps_in_workspace) {
    // The caller keeps no map (no backward follows): the kernels write them into the workspace.
    char* base = static_cast<char*>(a.workspace.data) + lay.kept_maps_off;
    a.probs = Tensor(base, dt, ctx.device, {sh.B, sh.Hq, sh.T, sh.S}, "attention.probs(workspace)");
    if (s.differential)
      a.probs2 = Tensor(base + lay.map_bytes, dt, ctx.device, {sh.B, sh.Hq, sh.T, sh.S}, "attention.probs2(workspace)");
  }
  check_device(ctx.device, {&a.q, &a.k, &a.v, &a.q2, &a.k2, &a.lambda, &a.key_lengths, &a.score_add,
                            &a.score_mul, &a.out, &a.probs, &a.probs2, &a.lse, &a.row_min, &a.row_sum,
                            &a.lse2, &a.row_min2, &a.row_sum2, &a.workspace});
  check_device(ctx.device, {&c.rows, &c.scores, &c.scores2, &c.probs, &c.entropy, &c.kl, &c.variance,
                            &c.spans, &c.span_mass});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::attention_forward(ctx, a, sh));
  cpu::attention_forward(ctx, a, sh);
}

void attention_backward(Ctx& ctx, const AttentionBackwardArgs& a) {
  NVTX_RANGE(ctx, "attention_backward");
  const AttentionSpec& s = a.spec;
  AttnShape sh = resolve(a, a.probs);
  const DType dt = a.q.dtype, acc = acc_dtype(dt);
  check_common(a, a, sh, dt, true);
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, true, "lse/row_min/row_sum");
  if (s.differential)
    check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, true, "lse2/row_min2/row_sum2");
  check_t(a.dout, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "dout");
  check_opt(a.dq, dt, {sh.B, sh.Hq, sh.T, sh.d}, "dq");
  check_opt(a.dk, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "dk");
  check_opt(a.dv, dt, {sh.B, sh.Hkv, sh.S_cap, sh.dv}, "dv");
  CHECK(s.differential || (!a.dq2.defined() && !a.dk2.defined() && !a.dlambda.defined()),
        "attention: dq2/dk2/dlambda are only for spec.differential");
  check_opt(a.dq2, dt, {sh.B, sh.Hq, sh.T, sh.d}, "dq2");
  check_opt(a.dk2, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "dk2");
  if (a.dlambda.defined()) check_t(a.dlambda, acc, {a.lambda.dim(0)}, "dlambda");
  CHECK(!a.dscore_add.defined() || a.score_add.defined(), "attention: dscore_add without score_add");
  CHECK(!a.dscore_mul.defined() || a.score_mul.defined(), "attention: dscore_mul without score_mul");
  check_opt(a.dscore_add, acc, {sh.B, sh.Hq, sh.T}, "dscore_add");
  check_opt(a.dscore_mul, acc, {sh.B, sh.Hq, sh.T}, "dscore_mul");
  AttnWorkspace lay = attention_workspace_layout(s, sh, dt, true, a.score_mul.defined());
  check_workspace(a.workspace, lay, "backward");
  check_device(ctx.device, {&a.q, &a.k, &a.v, &a.q2, &a.k2, &a.lambda, &a.key_lengths, &a.score_add,
                            &a.score_mul, &a.probs, &a.probs2, &a.lse, &a.row_min, &a.row_sum,
                            &a.lse2, &a.row_min2, &a.row_sum2, &a.dout, &a.dq, &a.dk, &a.dv});
  check_device(ctx.device, {&a.dq2, &a.dk2, &a.dlambda, &a.dscore_add, &a.dscore_mul, &a.workspace});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::attention_backward(ctx, a, sh));
  cpu::attention_backward(ctx, a, sh);
}

}  // namespace attnlab
