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
    l.rope_spec.layout = RopeLayout::rotate_half;
    l.rope_spec.theta = c.rope_theta;
    l.rope_spec.rotary_dim = c.head_dim;
    l.rope_spec.heads_first = true;
  }
  return l;
}

}  // namespace

StandardAttention::StandardAttention(const AttentionLayerArgs& args) : AttentionShell(args, standard_layout(args)) {
  const ModelConfig& c = args.config;
  spec_.Hq = c.num_heads;
  spec_.Hkv = c.num_kv_heads;
  spec_.d = c.head_dim;
  spec_.causal = true;
  const AttentionOptions o = attention_options_from_json(args.options, c.source);
  spec_.norm = norm_of(o);
  // The from-scratch decoders have their own dropout rules; GPT-2 reads attn_pdrop.
  attn_pdrop_ = o.scratch.empty() ? config_dropout(c, "attn_pdrop") : 0.0;
  if (spec_.norm == AttnNorm::ramp) spec_.ramp_alpha = ramp_alpha_for_layer(o, args.layer, c.num_layers);
}

void StandardAttention::plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) {
  const int64_t Hq = spec_.Hq;
  const DType acc = acc_dtype(dt);
  const std::string& n = name_.name;
  probs_ = p.saved(dt, {B, Hq, T, T}, n + ".probs");
  const bool need_lse = spec_.norm == AttnNorm::softmax || spec_.norm == AttnNorm::ramp;
  const bool need_min = spec_.norm == AttnNorm::linear || spec_.norm == AttnNorm::ramp;
  lse_ = need_lse ? p.saved(acc, {B, Hq, T}, n + ".lse") : Tensor();
  row_min_ = need_min ? p.saved(DType::i32, {B, Hq, T}, n + ".row_min") : Tensor();
  row_sum_ = need_min ? p.saved(acc, {B, Hq, T}, n + ".row_sum") : Tensor();
  AttentionSpec sized = spec_;
  sized.dropout = attn_pdrop_;  // room for the dropped map, should training apply it
  const size_t ws = std::max(attention_workspace_bytes(sized, B, T, T, dt, false, has_score_mul()),
                             attention_workspace_bytes(sized, B, T, T, dt, true, has_score_mul()));
  workspace_ = p.scratch_bytes("attn.workspace", ws);
}

size_t StandardAttention::attend_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  const int64_t rows = B * spec_.Hq * T;
  const size_t stat = Arena::aligned(size_t(rows) * dtype_size(acc_dtype(dt)));
  return 3 * stat + Arena::aligned(attention_workspace_bytes(spec_, B, T, S, dt, false, false, true));
}

void StandardAttention::fill_inputs(AttentionInputs& a, const AttendInputs& in) const {
  a.spec = spec_;
  a.q = in.q;
  a.k = in.k;
  a.v = in.v;
  a.keys = in.keys;
  a.key_lengths = in.key_lengths;
  a.query_offset = in.query_offset;
  a.score_add = in.score_add;
  a.score_mul = in.score_mul;
}

void StandardAttention::attend(Ctx& ctx, const AttendInputs& in, const Tensor& out) {
  AttentionArgs a;
  fill_inputs(a, in);
  a.out = out;
  if (in.captures) a.captures = *in.captures;
  dropped_ = false;
  if (!in.scratch) {
    if (training_ && attn_pdrop_ > 0) {
      dropped_ = true;
      a.spec.dropout = attn_pdrop_;
      dropout_offset_ = ctx.take_rng(uint64_t(in.q.dim(0) * spec_.Hq * in.q.dim(2) * probs_.dim(3)));
      a.dropout_offset = dropout_offset_;
    }
    a.probs = probs_;
    a.lse = lse_;
    a.row_min = row_min_;
    a.row_sum = row_sum_;
    a.workspace = workspace_;
  } else {
    // KV-cache inference: no backward follows, so the map lives in the workspace.
    const int64_t B = in.q.dim(0), T = in.q.dim(2), Hq = spec_.Hq;
    const DType acc = acc_dtype(in.q.dtype);
    Arena& s = *in.scratch;
    if (spec_.norm == AttnNorm::softmax || spec_.norm == AttnNorm::ramp) a.lse = s.alloc(acc, {B, Hq, T}, "attn.cached.lse");
    if (spec_.norm == AttnNorm::linear || spec_.norm == AttnNorm::ramp) {
      a.row_min = s.alloc(DType::i32, {B, Hq, T}, "attn.cached.row_min");
      a.row_sum = s.alloc(acc, {B, Hq, T}, "attn.cached.row_sum");
    }
    const size_t ws = attention_workspace_bytes(spec_, B, T, in.keys, in.q.dtype, false, in.score_mul.defined(), true);
    a.workspace = s.alloc(DType::i32, {int64_t((ws + 3) / 4)}, "attn.cached.workspace");
  }
  attention_forward(ctx, a);
}

void StandardAttention::attend_backward(Ctx& ctx, const AttendInputs& in, const AttendGrads& g) {
  AttentionBackwardArgs a;
  fill_inputs(a, in);
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
