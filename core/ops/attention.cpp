// Attention dispatcher: resolves the shape, validates every tensor against the spec, then runs the
// CPU implementation (attention_cpu.cpp) or the CUDA one (cuda/attention*.cu).
#include "core/ops/attention.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/attention_checks.h"

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

constexpr const char* kOp = "attention";

void check_t(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  attention_checks::required(kOp, t, dt, dims, what);
}
void check_opt(const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  attention_checks::optional(kOp, t, dt, dims, what);
}

// Shape from Q, K, V and the key count (explicit; 0: the saved map's last dim when a map is given,
// else S_cap).
AttnShape resolve(const AttentionInputs& in, const Tensor& probs) {
  const AttentionSpec& s = in.spec;
  attention_checks::spec(kOp, s);
  const Tensor& q = in.q;
  const std::string why = attention_backend_support(in.backend, s, q.defined() ? q.device : Device::cpu, q.dtype);
  CHECK(why.empty(), "attention: backend '", attention_backend_name(in.backend), "': ", why);
  AttnShape sh = attention_checks::shape(kOp, s, in.q, in.k, in.v);
  sh.S = in.keys > 0 ? in.keys : probs.defined() && probs.ndim == 4 ? probs.dim(3) : sh.S_cap;
  CHECK(sh.S >= 1 && sh.S <= sh.S_cap, "attention: keys (S = ", sh.S, ") must lie in [1, S_cap = ", sh.S_cap, "]");
  attention_checks::resolve_offset(kOp, sh, in.query_offset);
  return sh;
}

// The inputs and the saved maps (required: the backward reads them; optional in the forward).
void check_common(const AttentionInputs& in, const AttentionSaved& saved, const AttnShape& sh, DType dt,
                  bool maps_required) {
  attention_checks::inputs(kOp, in, sh, dt);
  (maps_required ? check_t : check_opt)(saved.probs, dt, {sh.B, sh.Hq, sh.T, sh.S}, "probs");
  if (in.spec.differential) {
    (maps_required ? check_t : check_opt)(saved.probs2, dt, {sh.B, sh.Hq, sh.T, sh.S}, "probs2");
    CHECK(saved.probs.defined() == saved.probs2.defined(), "attention: keep both differential maps or neither");
  } else {
    CHECK(!saved.probs2.defined(), "attention: probs2 is only for spec.differential");
  }
}

// lse is read by the forward of softmax and ramp, and by the backward of ramp only.
void check_stats(const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& lse,
                 const Tensor& row_min, const Tensor& row_sum, bool backward, const char* map) {
  const bool need_lse = s.norm == AttnNorm::ramp || (!backward && s.norm == AttnNorm::softmax);
  attention_checks::stats(kOp, s, sh, dt, lse, row_min, row_sum, need_lse, map);
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
  return w;
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
  const DType dt = args.q.dtype;
  check_common(args, args, sh, dt, false);
  const bool maps_in_workspace = !args.probs.defined();
  AttentionArgs a = args;
  check_t(a.out, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "out");
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, false, "lse/row_min/row_sum");
  if (s.differential)
    check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, false, "lse2/row_min2/row_sum2");

  const AttentionCaptures& c = a.captures;
  attention_checks::captures(kOp, c, s, sh, dt);

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
  const DType dt = a.q.dtype;
  check_common(a, a, sh, dt, true);
  check_stats(s, sh, dt, a.lse, a.row_min, a.row_sum, true, "lse/row_min/row_sum");
  if (s.differential)
    check_stats(s, sh, dt, a.lse2, a.row_min2, a.row_sum2, true, "lse2/row_min2/row_sum2");
  attention_checks::gradients(kOp, a, sh, dt);
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
