#include "core/layers/differential_attention.h"

#include <algorithm>
#include <cmath>

#include "core/memory.h"
#include "core/ops/diff_lambda.h"
#include "core/ops/kv_cache_write.h"
#include "core/nvtx.h"
#include "core/ops/permute.h"

namespace attnlab {

namespace {

// Half `half` (0: Q1/K1, 1: Q2/K2) of a [2, B·H, T, d] pair tensor, as [B, H, T, d].
Tensor half_of(const Tensor& pair, int half, int64_t B, int64_t H, int64_t T, int64_t d) {
  return pair.slice0(half, half + 1).view({B, H, T, d});
}

}  // namespace

double diff_lambda_init(int64_t layer) { return 0.8 - 0.6 * std::exp(-0.3 * double(layer)); }

namespace {

DifferentialAttention::Preset preset_of(const AttentionLayerArgs& args) {
  const AttentionOptions o = attention_options_from_json(args.options, args.config.source);
  return o.preset == "seed" ? DifferentialAttention::Preset::seed : DifferentialAttention::Preset::paper;
}

double lambda_init_of(const AttentionLayerArgs& args, DifferentialAttention::Preset preset) {
  if (preset == DifferentialAttention::Preset::paper) return diff_lambda_init(args.layer);
  const AttentionOptions o = attention_options_from_json(args.options, args.config.source);
  return o.lambda_init.value_or(0.8);
}

// paper: H = num_heads / 2 heads of two d-maps, V of width 2d, no biases, headwise RMSNorm over 2d,
// y = (1 − λ_init)·concat Woᵀ. seed: H = num_heads, V of width d, biases, out_proj → LayerNorm(D),
// then ·(1 − lambda_init).
ShellLayout differential_layout(const AttentionLayerArgs& args) {
  const ModelConfig& c = args.config;
  const DifferentialAttention::Preset preset = preset_of(args);
  const bool paper = preset == DifferentialAttention::Preset::paper;
  if (paper)
    CHECK(c.num_heads % 2 == 0, "config '", c.source, "': the paper's differential attention halves num_heads (",
          c.num_heads, "), which must be even");
  const int64_t H = paper ? c.num_heads / 2 : c.num_heads, d = c.head_dim;
  ShellLayout l;
  l.D = c.hidden_size;
  l.q_heads = l.kv_heads = 2 * H;
  l.head_dim = d;
  l.v_heads = l.out_heads = H;
  l.v_dim = l.out_dim = paper ? 2 * d : d;
  l.shell_keeps_qk = false;
  l.out_scale = 1.0 - lambda_init_of(args, preset);
  // A RoPE model's positions on each of the 2H sub-heads of dim d: the model's own rotation
  // (rotate-half on Qwen, interleaved on the from-scratch decoders with rope), after the model's
  // own per-head q/k RMSNorm (Qwen3).
  if (c.rope_theta > 0) {
    l.rope = true;
    l.rope_spec = model_rope_spec(c);
    l.qk_norm = c.qk_norm;
    l.qk_norm_eps = c.norm_eps;
  }
  if (paper) {
    l.head_norm = true;
    l.head_norm_eps = 1e-5;
  } else {
    l.qkv_bias = l.o_bias = true;
    l.o_name = "out_proj";
    l.post_norm = true;
  }
  return l;
}

}  // namespace

DifferentialAttention::DifferentialAttention(const AttentionLayerArgs& args)
    : AttentionShell(args, differential_layout(args)) {
  const ModelConfig& c = args.config;
  preset_ = preset_of(args);
  lambda_init_ = lambda_init_of(args, preset_);
  D_ = c.hidden_size;
  d_ = c.head_dim;
  H_ = layout().out_heads;
  dv_ = layout().out_dim;
  ParamStore& ps = args.params;
  const std::string& p = args.prefix;
  if (preset_ == Preset::paper) {
    const char* names[4] = {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"};
    for (int i = 0; i < 4; ++i) {
      lambda_vecs_[i] = &ps.add(p + "." + names[i], {d_});
      lambda_vecs_[i]->decay = false;
      lambda_vecs_[i]->init = ParamInit::normal_added(0.1);  // METHODS §3.2: N(0, 0.1²)
    }
  } else {
    lambda_raw_ = &ps.add(p + ".lambda", {H_});
    lambda_raw_->decay = false;
    lambda_raw_->init = ParamInit::normal_added(1.0);  // METHODS §3.3: λ' ~ N(0, 1)
  }
  spec_.Hq = spec_.Hkv = H_;
  spec_.d = d_;
  spec_.dv = dv_;
  spec_.causal = true;
  spec_.differential = true;
  // The op runs every normalisation under differential attention (per map, METHODS §3.2 with §4.4–4.5).
  const AttentionOptions o = attention_options_from_json(args.options, c.source);
  spec_.norm = o.norm == "linear" ? AttnNorm::linear : o.norm == "ramp" ? AttnNorm::ramp : AttnNorm::softmax;
  if (spec_.norm == AttnNorm::ramp) spec_.ramp_alpha = ramp_alpha_for_layer(o, args.layer, c.num_layers);
}

void DifferentialAttention::plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) {
  B_ = B;
  T_ = T;
  const DType acc = acc_dtype(dt);
  const std::string& n = name_.name;
  const int64_t BH = B * H_;
  q_pair_ = p.saved(dt, {2, BH, T, d_}, n + ".q12");
  k_pair_ = p.saved(dt, {2, BH, T, d_}, n + ".k12");
  const AttentionBackend be = planned_backend();
  const bool fused = be == AttentionBackend::fused;
  // The fused backend keeps no maps: row statistics and the un-mixed outputs of both maps.
  probs_ = fused ? Tensor() : p.saved(dt, {B, H_, T, T}, n + ".probs1");
  probs2_ = fused ? Tensor() : p.saved(dt, {B, H_, T, T}, n + ".probs2");
  out_parts_ = fused ? p.saved(dt, {B, H_, T, attention_fused_nparts(spec_) * spec_.value_dim()}, n + ".out_parts")
                     : Tensor();
  const bool need_lse = spec_.norm != AttnNorm::linear, need_min = spec_.norm != AttnNorm::softmax;
  lse_ = need_lse ? p.saved(acc, {B, H_, T}, n + ".lse1") : Tensor();
  lse2_ = need_lse ? p.saved(acc, {B, H_, T}, n + ".lse2") : Tensor();
  row_min_ = need_min ? p.saved(DType::i32, {B, H_, T}, n + ".row_min1") : Tensor();
  row_min2_ = need_min ? p.saved(DType::i32, {B, H_, T}, n + ".row_min2") : Tensor();
  row_sum_ = need_min ? p.saved(acc, {B, H_, T}, n + ".row_sum1") : Tensor();
  row_sum2_ = need_min ? p.saved(acc, {B, H_, T}, n + ".row_sum2") : Tensor();
  lambda_ = p.saved(acc, {preset_ == Preset::paper ? 1 : H_}, n + ".lambda");
  dq_pair_ = p.scratch("dattn.dq12", dt, {2, BH, T, d_});
  dk_pair_ = p.scratch("dattn.dk12", dt, {2, BH, T, d_});
  dlambda_ = p.scratch("dattn.dlambda", acc, {preset_ == Preset::paper ? 1 : H_});
  const size_t ws = std::max(attention_backend_workspace_bytes(be, spec_, B, T, T, dt, false, has_score_mul()),
                             attention_backend_workspace_bytes(be, spec_, B, T, T, dt, true, has_score_mul()));
  workspace_ = p.scratch_bytes("dattn.workspace", ws);
}

void DifferentialAttention::fill_attention_inputs(AttentionInputs& a, AttentionSaved& saved, const Tensor& v) const {
  const int64_t B = B_, T = T_, H = H_;
  a.spec = spec_;
  a.q = half_of(q_pair_, 0, B, H, T, d_);
  a.k = half_of(k_pair_, 0, B, H, T, d_);
  a.q2 = half_of(q_pair_, 1, B, H, T, d_);
  a.k2 = half_of(k_pair_, 1, B, H, T, d_);
  a.v = v;
  a.lambda = lambda_;
  a.backend = planned_backend();
  saved.out_parts = out_parts_;
  saved.probs = probs_;
  saved.probs2 = probs2_;
  saved.lse = lse_;
  saved.lse2 = lse2_;
  saved.row_min = row_min_;
  saved.row_min2 = row_min2_;
  saved.row_sum = row_sum_;
  saved.row_sum2 = row_sum2_;
}

// λ on the device from the parameters (core/ops/diff_lambda.h): no host round trip in the step.
void DifferentialAttention::compute_lambda(Ctx& ctx, const Tensor& out) {
  DiffLambdaArgs la;
  la.lambda = out;
  if (preset_ == Preset::paper) {
    la.preset = DiffLambdaPreset::paper;
    la.q1 = lambda_vecs_[0]->value;
    la.k1 = lambda_vecs_[1]->value;
    la.q2 = lambda_vecs_[2]->value;
    la.k2 = lambda_vecs_[3]->value;
    la.lambda_init = lambda_init_;
  } else {
    la.preset = DiffLambdaPreset::seed;
    la.raw = lambda_raw_->value;
  }
  diff_lambda_forward(ctx, la);
  last_ctx_ = ctx;
}

// The re-parameterisation's backward from the op's dλ, on the device (accumulates into the grads).
void DifferentialAttention::lambda_backward(Ctx& ctx, const Tensor& dlambda) {
  DiffLambdaBackwardArgs lb;
  lb.dlambda = dlambda;
  if (preset_ == Preset::paper) {
    lb.preset = DiffLambdaPreset::paper;
    lb.q1 = lambda_vecs_[0]->value;
    lb.k1 = lambda_vecs_[1]->value;
    lb.q2 = lambda_vecs_[2]->value;
    lb.k2 = lambda_vecs_[3]->value;
    lb.dq1 = lambda_vecs_[0]->grad;
    lb.dk1 = lambda_vecs_[1]->grad;
    lb.dq2 = lambda_vecs_[2]->grad;
    lb.dk2 = lambda_vecs_[3]->grad;
  } else {
    lb.preset = DiffLambdaPreset::seed;
    lb.raw = lambda_raw_->value;
    lb.draw = lambda_raw_->grad;
  }
  diff_lambda_backward(ctx, lb);
}

const std::vector<double>& DifferentialAttention::lambda_values() const {
  lambda_host_ = lambda_.defined() ? to_host_f64(last_ctx_, lambda_) : std::vector<double>();
  return lambda_host_;
}

void DifferentialAttention::split_pairs(Ctx& ctx, const Tensor& hf, const Tensor& pair) {
  // [B, 2H, T, d] = [1, B·H, 2, T·d] → [1, 2, B·H, T·d] = [2, B·H, T, d].
  permute_forward(ctx, {pair.view({1, 2, B_ * H_, T_ * d_}), hf.view({1, B_ * H_, 2, T_ * d_})});
}

void DifferentialAttention::merge_pairs(Ctx& ctx, const Tensor& dpair, const Tensor& dhf) {
  permute_backward(ctx, {dhf.view({1, B_ * H_, 2, T_ * d_}), dpair.view({1, 2, B_ * H_, T_ * d_})});
}

void DifferentialAttention::attend(Ctx& ctx, const AttendInputs& in, const Tensor& out) {
  if (in.scratch) return attend_cached(ctx, in, out);
  split_pairs(ctx, in.q, q_pair_);
  split_pairs(ctx, in.k, k_pair_);
  AttentionArgs a;
  fill_attention_inputs(a, a, in.v);
  a.score_add = in.score_add;
  a.score_mul = in.score_mul;
  a.out = out;
  a.workspace = workspace_;
  if (in.captures) a.captures = *in.captures;
  if (capture_rows_.defined()) {
    a.captures.rows = capture_rows_;
    a.captures.probs = capture_probs_;
  }
  attention_forward(ctx, a);
}

void DifferentialAttention::attend_backward(Ctx& ctx, const AttendInputs& in, const AttendGrads& g) {
  const int64_t B = B_, T = T_, H = H_;
  AttentionBackwardArgs a;
  fill_attention_inputs(a, a, in.v);
  a.score_add = in.score_add;
  a.score_mul = in.score_mul;
  a.dout = g.dout;
  a.dq = half_of(dq_pair_, 0, B, H, T, d_);
  a.dk = half_of(dk_pair_, 0, B, H, T, d_);
  a.dq2 = half_of(dq_pair_, 1, B, H, T, d_);
  a.dk2 = half_of(dk_pair_, 1, B, H, T, d_);
  a.dv = g.dv;
  a.dlambda = dlambda_;
  a.dscore_add = g.dscore_add;
  a.dscore_mul = g.dscore_mul;
  a.workspace = workspace_;
  attention_backward(ctx, a);
  lambda_backward(ctx, dlambda_);
  merge_pairs(ctx, dq_pair_, g.dq);
  merge_pairs(ctx, dk_pair_, g.dk);
}

// ---- KV-cache inference ------------------------------------------------------------------------

size_t DifferentialAttention::attend_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  // The q halves (the write's k halves, as large, are given back before the step), λ, the op's memory.
  const size_t pair = Arena::aligned(size_t(2 * B * H_ * T * d_) * dtype_size(dt));
  const size_t lambda = Arena::aligned(size_t(preset_ == Preset::paper ? 1 : H_) * dtype_size(acc_dtype(dt)));
  return pair + lambda + cached_op_bytes(spec_, B, T, S, dt, has_score_mul());
}

void DifferentialAttention::write_kv_cache(Ctx& ctx, const CachedAttentionArgs& a, const Tensor& k_tok,
                                           const Tensor& v_tok, Arena& scratch) {
  const int64_t B = k_tok.dim(0), T = k_tok.dim(1), S_cap = a.k_cache.dim(2), BTH = B * T * H_;
  // k_tok [B, T, 2H, d] = [1, B·T·H, 2, d] → [1, 2, B·T·H, d]: K1 tokens, then K2 tokens.
  Tensor halves = scratch.alloc(k_tok.dtype, {2, BTH, d_}, "dattn.cached.k12");
  permute_forward(ctx, {halves.view({1, 2, BTH, d_}), k_tok.view({1, BTH, 2, d_})});
  const Tensor cache = a.k_cache.view({2, B * H_, S_cap, d_});
  for (int half = 0; half < 2; ++half)
    kv_cache_write_forward(ctx, {half_of(cache, half, B, H_, S_cap, d_), halves.slice0(half, half + 1).view({B, T, H_, d_}),
                                 a.positions});
  kv_cache_write_forward(ctx, {a.v_cache, v_tok, a.positions});
}

void DifferentialAttention::attend_cached(Ctx& ctx, const AttendInputs& in, const Tensor& out) {
  const int64_t B = in.q.dim(0), T = in.q.dim(2), S_cap = in.k.dim(2), BH = B * H_;
  const DType dt = in.q.dtype;
  Arena& s = *in.scratch;
  AttentionArgs a;
  a.spec = spec_;
  a.lambda = s.alloc(acc_dtype(dt), {preset_ == Preset::paper ? 1 : H_}, "dattn.cached.lambda");
  compute_lambda(ctx, a.lambda);
  Tensor q_pair = s.alloc(dt, {2, BH, T, d_}, "dattn.cached.q12");
  permute_forward(ctx, {q_pair.view({1, 2, BH, T * d_}), in.q.view({1, BH, 2, T * d_})});
  const Tensor k_pair = in.k.view({2, BH, S_cap, d_});
  set_op_inputs(a, in);  // then q and k: the two halves
  a.q = half_of(q_pair, 0, B, H_, T, d_);
  a.q2 = half_of(q_pair, 1, B, H_, T, d_);
  a.k = half_of(k_pair, 0, B, H_, S_cap, d_);
  a.k2 = half_of(k_pair, 1, B, H_, S_cap, d_);
  take_cached_op_memory(s, a, B, T, in.keys, dt);  // no backward follows: both maps live in the workspace
  a.out = out;
  if (in.captures) a.captures = *in.captures;
  attention_forward(ctx, a);
}

std::unique_ptr<AttentionLayer> make_differential_attention(const AttentionLayerArgs& args) {
  return std::make_unique<DifferentialAttention>(args);
}

}  // namespace attnlab
