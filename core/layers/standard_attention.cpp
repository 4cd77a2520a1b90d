#include "core/layers/standard_attention.h"

#include "core/layers/dropout.h"

namespace attnlab {

namespace {

AttnNorm norm_of(const AttentionOptions& o) {
  if (o.norm == "linear") return AttnNorm::linear;
  if (o.norm == "ramp") return AttnNorm::ramp;
  return AttnNorm::softmax;
}

ShellLayout standard_layout(const AttentionLayerArgs& args) {
  const ModelConfig& c = args.config;
  const AttentionOptions o = attention_options_from_json(args.options, c.source);
  ShellLayout l;
  l.D = c.hidden_size;
  l.head_dim = c.head_dim;
  l.q_heads = l.out_heads = c.num_heads;
  l.kv_heads = l.v_heads = c.num_kv_heads;
  l.v_dim = l.out_dim = c.head_dim;
  const std::string& scratch = o.scratch;
  if (!scratch.empty()) {
    // METHODS §3.4: per-head Linear q/k/v, concat → Linear(D→D); the seed preset with biases
    // everywhere and a LayerNorm(D) after the output projection. Learned positions (no RoPE).
    const bool seed = scratch == "seed";
    l.qkv_bias = l.o_bias = seed;
    l.post_norm = seed;
    l.o_name = "out_proj";
    // model.decoder.rope: rotate-half RoPE (METHODS §3.5) in place of the learned positions.
    if (c.rope_theta > 0) l.rope = true, l.rope_spec = model_rope_spec(c);
  } else if (c.arch == ModelArch::gpt2) {
    CHECK(c.num_heads == c.num_kv_heads && c.num_heads * c.head_dim == c.hidden_size,
          "GPT-2 attention needs Hkv = Hq and Hq·d = D");
    l.fused_qkv = true;
    l.qkv_bias = l.o_bias = true;
    l.o_name = "c_proj";
    l.o_conv1d = true;
  } else {
    l.qkv_bias = c.attention_bias;
    // Qwen2's o_proj has no bias; Qwen3's follows attention_bias.
    l.o_bias = c.arch == ModelArch::qwen3 && c.attention_bias;
    l.qk_norm = c.qk_norm;
    l.qk_norm_eps = c.norm_eps;
    l.rope = true;
    l.rope_spec = model_rope_spec(c);
  }
  return l;
}

}  // namespace

StandardAttention::StandardAttention(const AttentionLayerArgs& args) : AttentionShell(args, standard_layout(args)) {
  const ModelConfig& c = args.config;
  spec_.Hq = c.num_heads;
  spec_.Hkv = c.num_kv_heads;
  spec_.d = c.head_dim;
  const AttentionOptions o = attention_options_from_json(args.options, c.source);
  // norm_mask: unmasked (METHODS §4.4's literal prefill): the linear / ramp map over every key.
  spec_.causal = o.norm_mask != "unmasked";
  spec_.norm = norm_of(o);
  // The from-scratch decoders have their own dropout rules; GPT-2 reads attn_pdrop.
  attn_pdrop_ = o.scratch.empty() ? config_dropout(c, "attn_pdrop") : 0.0;
  if (spec_.norm == AttnNorm::ramp) spec_.ramp_alpha = ramp_alpha_for_layer(o, args.layer, c.num_layers);
}

void StandardAttention::plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) {
  const int64_t Hq = spec_.Hq;
  const DType acc = acc_dtype(dt);
  const std::string& n = name_.name;
  const AttentionBackend be = planned_backend();
  const bool fused = be == AttentionBackend::fused;
  // The fused backend keeps no map, only row statistics (and ramp's un-mixed outputs).
  probs_ = fused ? Tensor() : p.saved(dt, {B, Hq, T, T}, n + ".probs");
  const int64_t nparts = attention_fused_nparts(spec_);
  out_parts_ = fused && nparts > 1 ? p.saved(dt, {B, Hq, T, nparts * spec_.value_dim()}, n + ".out_parts") : Tensor();
  const bool need_lse = spec_.norm == AttnNorm::softmax || spec_.norm == AttnNorm::ramp;
  const bool need_min = spec_.norm == AttnNorm::linear || spec_.norm == AttnNorm::ramp;
  lse_ = need_lse ? p.saved(acc, {B, Hq, T}, n + ".lse") : Tensor();
  row_min_ = need_min ? p.saved(DType::i32, {B, Hq, T}, n + ".row_min") : Tensor();
  row_sum_ = need_min ? p.saved(acc, {B, Hq, T}, n + ".row_sum") : Tensor();
  AttentionSpec sized = spec_;
  sized.dropout = attn_pdrop_;  // room for the dropped map, should training apply it
  const size_t ws = std::max(attention_backend_workspace_bytes(be, sized, B, T, T, dt, false, has_score_mul()),
                             attention_backend_workspace_bytes(be, sized, B, T, T, dt, true, has_score_mul()));
  workspace_ = p.scratch_bytes("attn.workspace", ws);
}

size_t StandardAttention::attend_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  return cached_op_bytes(spec_, B, T, S, dt, has_score_mul());
}

void StandardAttention::fill_inputs(AttentionInputs& a, const AttendInputs& in) const {
  a.spec = spec_;
  set_op_inputs(a, in);
}

void StandardAttention::attend(Ctx& ctx, const AttendInputs& in, const Tensor& out) {
  AttentionArgs a;
  fill_inputs(a, in);
  a.out = out;
  if (in.captures) a.captures = *in.captures;
  a.backend = in.scratch ? attention_backend(ctx.device, in.q.dtype) : planned_backend();
  dropped_ = false;
  if (!in.scratch) {
    if (training_ && attn_pdrop_ > 0) {
      CHECK(a.backend == AttentionBackend::materialized, "attention '", name(),
            "': attention dropout needs the materialized backend, but the layer was planned in eval mode on the "
            "fused one; set training mode before plan(), or set attn_pdrop to 0");
      dropped_ = true;
      a.spec.dropout = attn_pdrop_;
      dropout_offset_ = ctx.take_rng(uint64_t(in.q.dim(0) * spec_.Hq * in.q.dim(2) * probs_.dim(3)));
      a.dropout_offset = dropout_offset_;
    }
    a.probs = probs_;
    a.out_parts = out_parts_;
    a.lse = lse_;
    a.row_min = row_min_;
    a.row_sum = row_sum_;
    a.workspace = workspace_;
  } else {
    // KV-cache inference: no backward follows, so the map lives in the workspace.
    take_cached_op_memory(*in.scratch, a, in.q.dim(0), in.q.dim(2), in.keys, in.q.dtype);
  }
  attention_forward(ctx, a);
}

void StandardAttention::attend_backward(Ctx& ctx, const AttendInputs& in, const AttendGrads& g) {
  AttentionBackwardArgs a;
  fill_inputs(a, in);
  a.backend = planned_backend();
  a.out = a.backend == AttentionBackend::fused && !out_parts_.defined() ? g.out : Tensor();
  a.out_parts = out_parts_;
  a.probs = probs_;
  a.lse = lse_;
  a.row_min = row_min_;
  a.row_sum = row_sum_;
  a.dout = g.dout;
  a.dq = g.dq;
  a.dk = g.dk;
  a.dv = g.dv;
  a.dscore_add = g.dscore_add;
  a.dscore_mul = g.dscore_mul;
  a.workspace = workspace_;
  if (dropped_) {
    a.spec.dropout = attn_pdrop_;
    a.dropout_offset = dropout_offset_;
  }
  attention_backward(ctx, a);
}

std::unique_ptr<AttentionLayer> make_standard_attention(const AttentionLayerArgs& args) {
  return std::make_unique<StandardAttention>(args);
}

}  // namespace attnlab
