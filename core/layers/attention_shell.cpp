#include "core/layers/attention_shell.h"

#include <algorithm>

#include "core/memory.h"
#include "core/nvtx.h"
#include "core/ops/kv_cache_write.h"
#include "core/ops/layernorm.h"
#include "core/ops/matmul.h"
#include "core/ops/permute.h"
#include "core/ops/rmsnorm.h"
#include "core/ops/scale.h"

namespace attnlab {

RopeSpec model_rope_spec(const ModelConfig& c) {
  CHECK(c.rope_theta > 0, "config '", c.source, "': rope_theta ", c.rope_theta, " is not a RoPE base");
  RopeSpec s;
  s.layout = c.rope_interleaved ? RopeLayout::interleaved : RopeLayout::rotate_half;
  s.theta = c.rope_theta;
  s.rotary_dim = c.head_dim;
  s.heads_first = true;
  return s;
}

AttentionShell::AttentionShell(const AttentionLayerArgs& args, const ShellLayout& l)
    : name_(args.prefix), layer_(args.layer), layout_(l) {
  CHECK(l.D > 0 && l.q_heads > 0 && l.kv_heads > 0 && l.head_dim > 0 && l.v_heads > 0 && l.v_dim > 0 &&
            l.out_heads > 0 && l.out_dim > 0,
        "attention '", args.prefix, "': every size of the layout must be positive");
  ParamStore& ps = args.params;
  const std::string& p = args.prefix;
  const int64_t D = l.D, d = l.head_dim;
  q_.heads = l.q_heads;
  k_.heads = l.kv_heads;
  if (l.fused_qkv) {
    CHECK(l.q_heads * d == D && l.kv_heads * d == D && l.v_heads * l.v_dim == D,
          "attention '", p, "': a fused c_attn needs q, k and v each D wide");
    // Conv1D weights: [in, out] in the checkpoint, [out, in] here. Rows of c_attn: q, k, v.
    Param* w = &ps.add(p + ".c_attn.weight", {3 * D, D}, true);
    Param* b = l.qkv_bias ? &ps.add(p + ".c_attn.bias", {3 * D}) : nullptr;
    q_.proj = Linear(w, b, 0, D);
    k_.proj = Linear(w, b, D, D);
    v_proj_ = Linear(w, b, 2 * D, D);
  } else {
    auto proj = [&](const char* nm, int64_t out) {
      Param* w = &ps.add(p + "." + nm + ".weight", {out, D});
      Param* b = l.qkv_bias ? &ps.add(p + "." + nm + ".bias", {out}) : nullptr;
      return Linear(w, b);
    };
    q_.proj = proj("q_proj", l.q_heads * d);
    k_.proj = proj("k_proj", l.kv_heads * d);
    v_proj_ = proj("v_proj", l.v_heads * l.v_dim);
  }
  const int64_t merged = l.out_heads * l.out_dim;
  Param* ow = &ps.add(p + "." + l.o_name + ".weight", {D, merged}, l.o_conv1d);
  Param* ob = l.o_bias ? &ps.add(p + "." + l.o_name + ".bias", {D}) : nullptr;
  o_proj_ = Linear(ow, ob);
  CHECK(l.out_scale == 1 || l.post_norm || !l.o_bias, "attention '", p,
        "': an output scale without a post-norm is applied as the o_proj GEMM's alpha, which has no bias");
  if (l.qk_norm) {
    q_.norm_weight = &ps.add(p + ".q_norm.weight", {d});
    k_.norm_weight = &ps.add(p + ".k_norm.weight", {d});
    q_.norm = RmsNorm(p + ".q_norm", q_.norm_weight, l.qk_norm_eps);
    k_.norm = RmsNorm(p + ".k_norm", k_.norm_weight, l.qk_norm_eps);
  }
  if (l.head_norm) {
    head_norm_weight_ = &ps.add(p + ".subln.weight", {l.out_dim});
    head_norm_ = RmsNorm(p + ".subln", head_norm_weight_, l.head_norm_eps);
  }
  const AttentionOptions opts = attention_options_from_json(args.options, args.config.source);
  impl_ = attention_impl_from_name(opts.impl);
  if (opts.controller != "none")
    controller_ = ScoreController(p, controller_from_name(opts.controller, args.config.source), D, l.out_heads, ps);
  if (l.post_norm) {
    post_w_ = &ps.add(p + ".out_norm.weight", {D});
    post_b_ = &ps.add(p + ".out_norm.bias", {D});
    post_norm_ = LayerNorm(p + ".out_norm", post_w_, post_b_, 1e-5);
  }
}

// ---- training path -----------------------------------------------------------------------------

void AttentionShell::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) {
  B_ = B;
  T_ = T;
  const ShellLayout& l = layout_;
  const int64_t d = l.head_dim, D = l.D;
  const int64_t Hmax = std::max({l.q_heads, l.kv_heads});
  const int64_t tok_width = std::max({Hmax * d, l.v_heads * l.v_dim, D});
  const std::string& n = name_.name;
  planned_backend_ = attention_backend(ctx.device, dt, /*training=*/true);
  for (Branch* b : {&q_, &k_}) {
    const std::string which = b == &q_ ? ".q" : ".k";
    b->raw = l.qk_norm ? p.saved(dt, {B, T, b->heads, d}, n + which + "_proj_out") : Tensor();
    if (l.qk_norm) b->norm.plan(p, ctx, dt, B * T * b->heads, d);
    b->heads_first = l.shell_keeps_qk ? p.saved(dt, {B, b->heads, T, d}, n + which)
                                      : p.scratch(b == &q_ ? "attn.q_hf" : "attn.k_hf", dt, {B, b->heads, T, d});
  }
  v_hf_ = p.saved(dt, {B, l.v_heads, T, l.v_dim}, n + ".v");
  const int64_t merged = l.out_heads * l.out_dim;
  // The step's output is saved when the head norm's backward or the step's own reads it, else it is scratch.
  out_hf_ = l.head_norm || attend_saves_out() ? p.saved(dt, {B, l.out_heads, T, l.out_dim}, n + ".out")
                        : p.scratch("attn.out_hf", dt, {B, l.out_heads, T, l.out_dim});
  if (l.head_norm) head_norm_.plan(p, ctx, dt, B * l.out_heads * T, l.out_dim);
  merged_ = p.saved(dt, {B, T, merged}, n + ".merged");
  if (l.post_norm) {
    lin_out_ = p.saved(dt, {B, T, D}, n + ".lin_out");
    post_norm_.plan(p, ctx, dt, B * T, D);
  }

  tok_ = p.scratch("attn.tok", dt, {B, T, tok_width});
  tok2_ = l.qk_norm ? p.scratch("attn.tok2", dt, {B, T, Hmax * d}) : Tensor();
  normed_ = (l.head_norm || l.post_norm) ? p.scratch("attn.normed", dt, {B, T, std::max(merged, D)}) : Tensor();
  d_merged_ = p.scratch("attn.d_merged", dt, {B, T, merged});
  d_out_hf_ = p.scratch("attn.d_out_hf", dt, {B, l.out_heads, T, l.out_dim});
  dq_hf_ = p.scratch("attn.dq_hf", dt, {B, l.q_heads, T, d});
  dk_hf_ = p.scratch("attn.dk_hf", dt, {B, l.kv_heads, T, d});
  dv_hf_ = p.scratch("attn.dv_hf", dt, {B, l.v_heads, T, l.v_dim});
  if (controller_.active()) {
    controller_.plan(p, ctx, dt, B, T);
    ctrl_out_ = p.saved(acc_dtype(dt), {B, l.out_heads, T}, n + ".controller_out");
    d_ctrl_ = p.scratch("attn.d_controller", acc_dtype(dt), {B, l.out_heads, T});
  }
  plan_attend(p, dt, B, T);
}

AttendInputs AttentionShell::training_inputs() const {
  AttendInputs in;
  in.q = q_.heads_first;
  in.k = k_.heads_first;
  in.v = v_hf_;
  in.keys = T_;
  in.query_offset = 0;
  if (controller_.active()) (controller_.kind() == ControllerKind::additive ? in.score_add : in.score_mul) = ctrl_out_;
  return in;
}

void AttentionShell::branch_forward(Ctx& ctx, Branch& b, const Tensor& x, bool probe) {
  const int64_t H = b.heads, d = layout_.head_dim;
  Tensor tok = tok_.prefix({B_, T_, H, d});
  if (layout_.qk_norm) {
    b.proj.forward(ctx, x, b.raw.view({B_, T_, H * d}));
    if (probe && &b == &q_) probe_activation(ctx, "q_proj", b.raw.view({B_, T_, H * d}));
    b.norm.forward(ctx, b.raw, tok);
  } else {
    b.proj.forward(ctx, x, tok.view({B_, T_, H * d}));
    if (probe && &b == &q_) probe_activation(ctx, "q_proj", tok.view({B_, T_, H * d}));
  }
  if (layout_.rope) rope_forward(ctx, {b.heads_first, tok, layout_.rope_spec});
  else permute_forward(ctx, {b.heads_first, tok});
}

void AttentionShell::probe_activation(Ctx& ctx, const char* what, const Tensor& x) {
  if (ctx.probes && ctx.probes->wants(layer_, what)) ctx.probes->take_activation(ctx, layer_, what, x);
}

void AttentionShell::attend_probed(Ctx& ctx, AttendInputs in, const Tensor& out) {
  AttentionCaptures caps;
  bool captured = false;
  if (ctx.probes) {
    const AttentionSpec& s = attention_spec();
    const bool distribution = !s.differential && s.norm != AttnNorm::relaxed_linear;
    const int64_t S = in.keys > 0 ? in.keys : in.k.dim(2);
    captured = ctx.probes->begin_attention(ctx, layer_, in.q.dim(0), s.Hq, in.q.dim(2), S, acc_dtype(in.q.dtype),
                                           distribution, s.differential, &caps);
  }
  in.captures = captured ? &caps : nullptr;
  attend(ctx, in, out);  // writes the captures into the sink's staging buffer
}

// out_hf → (head norm) → merged → o_proj (·scale) → (post LayerNorm, ·scale) → y. `normed_hf`,
// `lin_out` and the statistics are where the intermediate results go (saved slots in training,
// scratch in forward_cached).
void AttentionShell::output_forward(Ctx& ctx, const Tensor& out_hf, const Tensor& merged, const Tensor& y,
                                    const Tensor& normed_hf, const Tensor& lin_out, const Tensor& post_normed,
                                    const Tensor& head_rstd, const Tensor& post_stats) {
  const ShellLayout& l = layout_;
  const int64_t B = out_hf.dim(0), T = out_hf.dim(2);
  Tensor src = out_hf;
  if (l.head_norm) {
    if (head_rstd.defined()) {
      RmsNormArgs n;
      n.y = normed_hf;
      n.rstd = head_rstd;
      n.x = out_hf;
      n.weight = head_norm_weight_->value;
      n.eps = l.head_norm_eps;
      rmsnorm_forward(ctx, n);
    } else {
      head_norm_.forward(ctx, out_hf, normed_hf);
    }
    src = normed_hf;
  }
  permute_forward(ctx, {merged.view({B, T, l.out_heads, l.out_dim}), src});
  if (!l.post_norm) {
    if (l.out_scale == 1) return o_proj_.forward(ctx, merged, y);
    MatmulArgs m;  // y = scale·merged Woᵀ (no bias: checked at construction)
    m.c = y.view({B * T, l.D});
    m.a = merged.view({B * T, l.out_heads * l.out_dim});
    m.b = o_proj_.weight();
    m.M = B * T;
    m.N = l.D;
    m.K = l.out_heads * l.out_dim;
    m.trans_b = true;
    m.alpha = l.out_scale;
    return matmul(ctx, m);
  }
  o_proj_.forward(ctx, merged, lin_out);
  Tensor normed = l.out_scale == 1 ? y : post_normed;
  if (post_stats.defined()) {
    LayerNormArgs n;
    n.y = normed;
    n.mean = post_stats.slice0(0, 1).view({B * T});
    n.rstd = post_stats.slice0(1, 2).view({B * T});
    n.x = lin_out;
    n.weight = post_w_->value;
    n.bias = post_b_->value;
    n.eps = 1e-5;
    layernorm_forward(ctx, n);
  } else {
    post_norm_.forward(ctx, lin_out, normed);
  }
  if (l.out_scale != 1) scale_forward(ctx, {y, normed, l.out_scale, 0.0});
}

void AttentionShell::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  const ShellLayout& l = layout_;
  CHECK(B_ > 0, "attention '", name_.name, "': forward before plan");
  CHECK(x.ndim == 3 && x.dim(0) == B_ && x.dim(1) == T_ && x.dim(2) == l.D, "attention '", name_.name,
        "': x must be [", B_, ", ", T_, ", ", l.D, "], got ", x.shape_str());
  before_forward(ctx);
  if (controller_.active()) {
    controller_.forward(ctx, x, ctrl_out_);
    if (ctx.probes && ctx.probes->wants_controller(layer_)) ctx.probes->take_controller(ctx, layer_, ctrl_out_);
  }
  GatedInputs in{x, x, x};
  if (gates_inputs()) {
    // The draft q̃, k̃: the same branches on the ungated x (probes see only the gated pass).
    branch_forward(ctx, q_, x, false);
    branch_forward(ctx, k_, x, false);
    DraftInputs draft;
    draft.x = x;
    draft.q = q_.heads_first;
    draft.k = k_.heads_first;
    in = gate_forward(ctx, draft);
  }
  branch_forward(ctx, q_, in.q);
  branch_forward(ctx, k_, in.k);
  Tensor v_tok = tok_.prefix({B_, T_, l.v_heads, l.v_dim});
  v_proj_.forward(ctx, in.v, v_tok.view({B_, T_, l.v_heads * l.v_dim}));
  permute_forward(ctx, {v_hf_, v_tok});

  attend_probed(ctx, training_inputs(), out_hf_);

  Tensor normed_hf = l.head_norm ? normed_.prefix({B_, l.out_heads, T_, l.out_dim}) : Tensor();
  Tensor post_normed = l.post_norm ? normed_.prefix({B_, T_, l.D}) : Tensor();
  output_forward(ctx, out_hf_, merged_, y, normed_hf, lin_out_, post_normed, Tensor(), Tensor());
  probe_activation(ctx, "attn_out", y);
}

void AttentionShell::branch_backward(Ctx& ctx, Branch& b, const Tensor& d_heads_first, const Tensor& x,
                                     const Tensor& dx, bool accumulate_dx) {
  const int64_t H = b.heads, d = layout_.head_dim;
  Tensor d_tok = tok_.prefix({B_, T_, H, d});
  if (layout_.rope) rope_backward(ctx, {d_tok, d_heads_first, layout_.rope_spec});
  else permute_backward(ctx, {d_tok, d_heads_first});
  Tensor d_proj = d_tok;
  if (layout_.qk_norm) {
    d_proj = tok2_.prefix({B_, T_, H, d});
    b.norm.backward(ctx, d_tok, b.raw, d_proj, false);
  }
  b.proj.backward(ctx, d_proj.view({B_, T_, H * d}), x, dx, accumulate_dx);
}

void AttentionShell::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  const ShellLayout& l = layout_;
  const int64_t B = B_, T = T_, merged = l.out_heads * l.out_dim;
  Tensor d_out_hf = d_out_hf_;
  Tensor d_merged = d_merged_.prefix({B, T, merged});
  if (!l.post_norm && l.out_scale != 1) {
    // merged → y = c·merged Woᵀ: dmerged = c·dy Wo; dWo += c·dyᵀ merged.
    MatmulArgs m;
    m.c = d_merged.view({B * T, merged});
    m.a = dy.view({B * T, l.D});
    m.b = o_proj_.weight();
    m.M = B * T;
    m.N = merged;
    m.K = l.D;
    m.alpha = l.out_scale;
    matmul(ctx, m);
    if (o_proj_.weight_grad().defined()) {
      MatmulArgs g;
      g.c = o_proj_.weight_grad();
      g.a = dy.view({B * T, l.D});
      g.b = merged_.view({B * T, merged});
      g.M = l.D;
      g.N = merged;
      g.K = B * T;
      g.trans_a = true;
      g.alpha = l.out_scale;
      g.beta = 1.f;
      matmul(ctx, g);
    }
  } else {
    Tensor d_lin = dy;
    if (l.post_norm) {
      Tensor d_normed = dy;
      if (l.out_scale != 1) {
        d_normed = normed_.prefix({B, T, l.D});
        scale_backward(ctx, {d_normed, dy, l.out_scale, false});
      }
      d_lin = tok_.prefix({B, T, l.D});
      post_norm_.backward(ctx, d_normed, lin_out_, d_lin, false);
    }
    o_proj_.backward(ctx, d_lin, merged_, d_merged, false);
  }
  if (l.head_norm) {
    Tensor d_normed = normed_.prefix({B, l.out_heads, T, l.out_dim});
    permute_backward(ctx, {d_normed, d_merged.view({B, T, l.out_heads, l.out_dim})});
    head_norm_.backward(ctx, d_normed, out_hf_, d_out_hf, false);
  } else {
    permute_backward(ctx, {d_out_hf, d_merged.view({B, T, l.out_heads, l.out_dim})});
  }

  AttendGrads g;
  g.dout = d_out_hf;
  if (l.head_norm || attend_saves_out()) g.out = out_hf_;
  g.dq = dq_hf_;
  g.dk = dk_hf_;
  g.dv = dv_hf_;
  if (controller_.active())
    (controller_.kind() == ControllerKind::additive ? g.dscore_add : g.dscore_mul) = d_ctrl_;
  attend_backward(ctx, training_inputs(), g);

  // q, k and v each run to their projection's backward before the next starts: they share the
  // token-major scratch.
  Tensor dv_tok = tok_.prefix({B, T, l.v_heads, l.v_dim});
  if (!gates_inputs()) {
    branch_backward(ctx, q_, dq_hf_, x, dx, false);
    branch_backward(ctx, k_, dk_hf_, x, dx, true);
    permute_backward(ctx, {dv_tok, dv_hf_});
    v_proj_.backward(ctx, dv_tok.view({B, T, l.v_heads * l.v_dim}), x, dx, true);
  } else {
    const GatedInputs in = gate_inputs_again(ctx, x);
    const GatedInputs din = gate_input_grads();
    branch_backward(ctx, q_, dq_hf_, in.q, din.q, false);
    branch_backward(ctx, k_, dk_hf_, in.k, din.k, false);
    permute_backward(ctx, {dv_tok, dv_hf_});
    v_proj_.backward(ctx, dv_tok.view({B, T, l.v_heads * l.v_dim}), in.v, din.v, false);
    gate_backward(ctx, x, din, dx);
  }
  if (controller_.active()) controller_.backward(ctx, d_ctrl_, x, dx);
}

// ---- KV-cache inference ------------------------------------------------------------------------

size_t AttentionShell::attend_cached_bytes(DType, int64_t, int64_t, int64_t) const {
  FAIL_WITH("attention layer '", name(), "' does not implement KV-cache inference (generation): its variant ",
            "has no cached attention step");
}

struct AttentionShell::CachedBuffers {
  Tensor q_tok, k_tok, v_tok;  // [B, T, H, d] projections (after q/k norm; k rotated in place)
  Tensor raw, rstd;            // q/k norm only: the projection output [B, T, Hmax, d] and its row statistics
  Tensor q_hf, out_hf;         // [B, Hq, T, d], [B, Ho, T, do]
  Tensor normed_hf, head_rstd; // head norm only
  Tensor merged;               // [B, T, Ho·do] o_proj's input
  Tensor lin_out, post_normed, post_stats;  // post norm only
  Tensor ctrl_out;             // controller only [B, Hq, T] acc
};

AttentionShell::CachedBuffers AttentionShell::cached_buffers(Arena* arena, DType dt, int64_t B, int64_t T,
                                                             size_t* bytes) const {
  const ShellLayout& l = layout_;
  const int64_t d = l.head_dim, Hmax = std::max(l.q_heads, l.kv_heads);
  const DType acc = acc_dtype(dt);
  *bytes = 0;
  auto take = [&](DType t, std::initializer_list<int64_t> dims, const char* name) {
    const Tensor shape(nullptr, t, Device::cpu, dims, name);
    *bytes += Arena::aligned(shape.bytes());
    return arena ? arena->alloc(t, dims, name) : Tensor();
  };
  CachedBuffers c;
  c.q_tok = take(dt, {B, T, l.q_heads, d}, "attn.cached.q_tok");
  c.k_tok = take(dt, {B, T, l.kv_heads, d}, "attn.cached.k_tok");
  c.v_tok = take(dt, {B, T, l.v_heads, l.v_dim}, "attn.cached.v_tok");
  if (l.qk_norm) {
    c.raw = take(dt, {B, T, Hmax, d}, "attn.cached.proj_out");
    c.rstd = take(acc, {B * T * Hmax}, "attn.cached.qk_rstd");
  }
  c.q_hf = take(dt, {B, l.q_heads, T, d}, "attn.cached.q");
  c.out_hf = take(dt, {B, l.out_heads, T, l.out_dim}, "attn.cached.out");
  if (l.head_norm) {
    c.normed_hf = take(dt, {B, l.out_heads, T, l.out_dim}, "attn.cached.normed");
    c.head_rstd = take(acc, {B * l.out_heads * T}, "attn.cached.head_rstd");
  }
  c.merged = take(dt, {B, T, l.out_heads * l.out_dim}, "attn.cached.merged");
  if (l.post_norm) {
    c.lin_out = take(dt, {B, T, l.D}, "attn.cached.lin_out");
    c.post_normed = take(dt, {B, T, l.D}, "attn.cached.post_normed");
    c.post_stats = take(acc, {2, B * T}, "attn.cached.post_stats");
  }
  if (controller_.active()) {
    c.ctrl_out = take(acc, {B, l.out_heads, T}, "attn.cached.controller_out");
    *bytes += controller_.inference_bytes(dt, B * T);  // taken and given back before the step
  }
  return c;
}

size_t AttentionShell::cached_op_bytes(const AttentionSpec& spec, int64_t B, int64_t T, int64_t S, DType dt,
                                       bool has_score_mul) {
  const size_t stat = Arena::aligned(size_t(B * spec.Hq * T) * dtype_size(acc_dtype(dt)));  // i32 row_min fits
  const size_t maps = spec.differential ? 2 : 1;
  // Either backend may run (the device is not known here): room for the larger, and for the fused
  // backend's un-mixed outputs (ramp, differential).
  const size_t parts = Arena::aligned(size_t(B * spec.Hq * T) * size_t(attention_fused_nparts(spec) * spec.value_dim()) *
                                      dtype_size(dt));
  return 3 * maps * stat + Arena::aligned(attention_workspace_bytes(spec, B, T, S, dt, false, has_score_mul, true)) +
         parts;
}

void AttentionShell::take_cached_op_memory(Arena& s, AttentionArgs& a, int64_t B, int64_t T, int64_t S, DType dt) {
  const AttentionSpec& spec = a.spec;
  const DType acc = acc_dtype(dt);
  const int64_t H = spec.Hq;
  const bool lse = spec.norm == AttnNorm::softmax || spec.norm == AttnNorm::ramp;
  const bool min_sum = spec.norm == AttnNorm::linear || spec.norm == AttnNorm::ramp;
  for (int map = 0; map < (spec.differential ? 2 : 1); ++map) {
    if (lse) (map ? a.lse2 : a.lse) = s.alloc(acc, {B, H, T}, "attn.cached.lse");
    if (min_sum) {
      (map ? a.row_min2 : a.row_min) = s.alloc(DType::i32, {B, H, T}, "attn.cached.row_min");
      (map ? a.row_sum2 : a.row_sum) = s.alloc(acc, {B, H, T}, "attn.cached.row_sum");
    }
  }
  const int64_t nparts = attention_fused_nparts(spec);
  if (a.backend == AttentionBackend::fused && nparts > 1)
    a.out_parts = s.alloc(dt, {B, H, T, nparts * spec.value_dim()}, "attn.cached.out_parts");
  const size_t ws = attention_backend_workspace_bytes(a.backend, spec, B, T, S, dt, false, a.score_mul.defined(), true);
  if (ws > 0) a.workspace = s.alloc(DType::i32, {int64_t((ws + 3) / 4)}, "attn.cached.workspace");
}

void AttentionShell::set_op_inputs(AttentionInputs& a, const AttendInputs& in) {
  a.q = in.q;
  a.k = in.k;
  a.v = in.v;
  a.keys = in.keys;
  a.key_lengths = in.key_lengths;
  a.query_offset = in.query_offset;
  a.score_add = in.score_add;
  a.score_mul = in.score_mul;
}

KvCacheShape AttentionShell::kv_cache_shape() const {
  return {layout_.kv_heads, layout_.head_dim, layout_.v_heads, layout_.v_dim};
}

void AttentionShell::write_kv_cache(Ctx& ctx, const CachedAttentionArgs& a, const Tensor& k_tok, const Tensor& v_tok,
                                    Arena&) {
  kv_cache_write_forward(ctx, {a.k_cache, k_tok, a.positions});
  kv_cache_write_forward(ctx, {a.v_cache, v_tok, a.positions});
}

size_t AttentionShell::cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  size_t bytes = 0;
  cached_buffers(nullptr, dt, B, T, &bytes);
  bytes += gates_inputs() ? Arena::aligned(gate_cached_bytes(dt, B, T, S)) : 0;
  return bytes + attend_cached_bytes(dt, B, T, S);
}

void AttentionShell::forward_cached(Ctx& ctx, const CachedAttentionArgs& a) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  const ShellLayout& l = layout_;
  CHECK(a.x.defined() && a.x.ndim == 3 && a.x.dim(2) == l.D, "attention '", name_.name,
        "' forward_cached: x must be [B, T, ", l.D, "], got ", a.x.shape_str());
  CHECK(a.scratch, "attention '", name_.name, "' forward_cached: no scratch arena");
  const int64_t B = a.x.dim(0), T = a.x.dim(1), d = l.head_dim;
  const DType dt = a.x.dtype;
  CHECK(a.positions.defined() && a.positions.ndim == 2 && a.positions.dim(0) == B && a.positions.dim(1) == T,
        "attention '", name_.name, "' forward_cached: positions must be [", B, ", ", T, "], got ",
        a.positions.shape_str());
  size_t bytes = 0;
  CachedBuffers c = cached_buffers(a.scratch, dt, B, T, &bytes);
  before_forward(ctx);
  if (controller_.active()) {
    const size_t mark = a.scratch->used();
    controller_.forward_inference(ctx, a.x, c.ctrl_out, *a.scratch);
    a.scratch->rewind(mark);
    if (ctx.probes && ctx.probes->wants_controller(layer_)) ctx.probes->take_controller(ctx, layer_, c.ctrl_out);
  }

  // q and k: projection → (per-head RMSNorm) → RoPE at the given positions. q goes heads-first for
  // the step; k stays token-major (rotated in place), the layout the cache write reads.
  RopeSpec rope = l.rope_spec;
  rope.positions = a.positions;
  auto project_qk = [&](Branch* b, const Tensor& x, bool probe) {
    const Tensor& tok = b == &q_ ? c.q_tok : c.k_tok;
    const int64_t H = b->heads;
    if (l.qk_norm) {
      Tensor raw = c.raw.prefix({B, T, H, d});
      b->proj.forward(ctx, x, raw.view({B, T, H * d}));
      if (probe && b == &q_) probe_activation(ctx, "q_proj", raw.view({B, T, H * d}));
      RmsNormArgs n;
      n.y = tok;
      n.rstd = c.rstd.prefix({B * T * H});
      n.x = raw;
      n.weight = b->norm_weight->value;
      n.eps = l.qk_norm_eps;
      rmsnorm_forward(ctx, n);
    } else {
      b->proj.forward(ctx, x, tok.view({B, T, H * d}));
      if (probe && b == &q_) probe_activation(ctx, "q_proj", tok.view({B, T, H * d}));
    }
    if (b == &q_) {
      rope.heads_first = true;
      if (l.rope) rope_forward(ctx, {c.q_hf, tok, rope});
      else permute_forward(ctx, {c.q_hf, tok});
    } else if (l.rope) {
      rope.heads_first = false;
      rope_forward(ctx, {tok, tok, rope});
    }
  };
  GatedInputs gated{a.x, a.x, a.x};
  if (gates_inputs()) {
    // The draft q̃, k̃ (when the call needs them) go into the same buffers, consumed by the gates
    // before the gated pass overwrites them.
    DraftInputs draft;
    draft.x = a.x;
    draft.cached = &a;
    if (draft_needed(a)) {
      project_qk(&q_, a.x, false);
      project_qk(&k_, a.x, false);
      draft.q = c.q_hf;
      draft.k = c.k_tok;
    }
    gated = gate_forward_cached(ctx, draft);
  }
  project_qk(&q_, gated.q, true);
  project_qk(&k_, gated.k, true);
  v_proj_.forward(ctx, gated.v, c.v_tok.view({B, T, l.v_heads * l.v_dim}));
  const size_t mark = a.scratch->used();
  write_kv_cache(ctx, a, c.k_tok, c.v_tok, *a.scratch);
  a.scratch->rewind(mark);

  AttendInputs in;
  in.q = c.q_hf;
  in.k = a.k_cache;
  in.v = a.v_cache;
  in.keys = a.keys;
  in.key_lengths = a.key_lengths;
  in.query_offset = a.query_offset;
  in.scratch = a.scratch;
  if (controller_.active()) (controller_.kind() == ControllerKind::additive ? in.score_add : in.score_mul) = c.ctrl_out;
  attend_probed(ctx, in, c.out_hf);
  output_forward(ctx, c.out_hf, c.merged, a.y, c.normed_hf, c.lin_out, c.post_normed, c.head_rstd, c.post_stats);
  probe_activation(ctx, "attn_out", a.y);
}

}  // namespace attnlab
