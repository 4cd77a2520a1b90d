// Attention dispatcher: resolves the shape, validates every tensor against the spec, then runs the
// CPU implementation (attention_cpu.cpp) or the CUDA one (cuda/attention*.cu).
#include "core/ops/attention.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/attention_checks.h"
#include "core/ops/attention_tiled.h"
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
    case AttentionBackend::fused: {
      if (spec.dropout > 0)
        return "attention dropout (GPT-2's attn_pdrop) is not in the fused backend; train with "
               "model.arch.attn_pdrop=0 to use it";
      if (device == Device::cpu) return "";  // the tiled reference runs every spec in f32 and f64
      if (dt != DType::f32 && dt != DType::bf16) return std::string("the fused CUDA kernels run f32 and bf16, not ") + dtype_name(dt);
      if (spec.d != 64 && spec.d != 128)
        return "the fused CUDA kernels take head dims 64 and 128 (this layer's is " + std::to_string(spec.d) + ")";
      if (spec.value_dim() != spec.d && spec.value_dim() != 2 * spec.d)
        return "the fused CUDA kernels take value dims d and 2d (this layer's is " + std::to_string(spec.value_dim()) + ")";
      if (spec.norm == AttnNorm::relaxed_linear) return "the fused CUDA kernels do not run relaxed_linear";
      return "";
    }
  }
  return "unknown attention backend";
}

AttentionImpl attention_impl_from_name(const std::string& name) {
  if (name == "auto") return AttentionImpl::automatic;
  if (name == "materialized") return AttentionImpl::materialized;
  if (name == "fused") return AttentionImpl::fused;
  FAIL_WITH("attention impl '", name, "' is not one of auto, materialized, fused");
}

AttentionBackend attention_backend_for(AttentionImpl impl, const AttentionSpec& spec, Device device, DType dt,
                                       bool fused_cuda_verified) {
  switch (impl) {
    case AttentionImpl::materialized: return AttentionBackend::materialized;
    case AttentionImpl::fused: {
      const std::string why = attention_backend_support(AttentionBackend::fused, spec, device, dt);
      INPUT_CHECK(why.empty(), "model.attention.impl: fused cannot run this attention layer: ", why,
            "; use impl: auto (falls back to materialized) or impl: materialized");
      return AttentionBackend::fused;
    }
    case AttentionImpl::automatic:
      return fused_cuda_verified && device == Device::cuda &&
                     attention_backend_support(AttentionBackend::fused, spec, device, dt).empty()
                 ? AttentionBackend::fused
                 : AttentionBackend::materialized;
  }
  return AttentionBackend::materialized;
}

int64_t attention_fused_nparts(const AttentionSpec& s) { return attention_tiled_nparts(s); }

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

size_t attention_backend_workspace_bytes(AttentionBackend backend, const AttentionSpec& spec, int64_t B, int64_t T,
                                         int64_t S, DType dt, bool backward, bool has_score_mul, bool maps_in_workspace) {
  if (backend == AttentionBackend::fused) return backward ? attention_tiled_workspace_bytes(spec, B, T, dt) : 0;
  return attention_workspace_bytes(spec, B, T, S, dt, backward, has_score_mul, maps_in_workspace);
}

namespace {

// The fused backend: the tiled reference's entry points, which validate every tensor again and
// run the CPU reference or the CUDA kernels.
void fused_forward(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh) {
  AttentionTiledArgs ta;
  ta.attn = a;
  ta.attn.workspace = Tensor();
  ta.attn.out_parts = Tensor();
  ta.S = sh.S;
  ta.out_parts = a.out_parts;
  attention_tiled_forward(ctx, ta);
}

void fused_backward(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh) {
  AttentionTiledBackwardArgs ta;
  ta.attn = a;
  ta.attn.out = Tensor();
  ta.attn.out_parts = Tensor();
  ta.S = sh.S;
  ta.out = attention_fused_nparts(a.spec) == 1 ? a.out : Tensor();
  ta.out_parts = a.out_parts;
  attention_tiled_backward(ctx, ta);
}

}  // namespace

void attention_forward(Ctx& ctx, const AttentionArgs& args) {
  NVTX_RANGE(ctx, "attention_forward");
  const AttentionSpec& s = args.spec;
  AttnShape sh = resolve(args, args.probs);
  if (args.backend == AttentionBackend::fused) return fused_forward(ctx, args, sh);
  CHECK(!args.out_parts.defined(), "attention: out_parts is saved by the fused backend only; leave it undefined");
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
  if (a.backend == AttentionBackend::fused) return fused_backward(ctx, a, sh);
  CHECK(!a.out_parts.defined() && !a.out.defined(),
        "attention: out and out_parts are read by the fused backward only; leave them undefined");
  const DType dt = a.q.dtype, acc = acc_dtype(dt);
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
