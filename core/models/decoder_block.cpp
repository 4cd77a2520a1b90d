#include "core/models/decoder_block.h"

#include <algorithm>

#include "core/nvtx.h"
#include "core/probes.h"
#include "core/ops/residual.h"

namespace attnlab {

GeluKind gelu_kind_of(const ModelConfig& c) {
  const std::string& a = c.activation;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh") return GeluKind::tanh_approx;
  if (a == "gelu") return GeluKind::erf_exact;
  FAIL_WITH("config '", c.source, "': activation_function '", a,
            "' is not implemented; GPT-2 models use gelu_new, gelu_pytorch_tanh (tanh form) or gelu (erf form)");
}

namespace {

BlockParts hf_block_parts(const ModelConfig& c, int64_t layer, const std::string& prefix, ParamStore& ps,
                          double residual_dropout) {
  const int64_t D = c.hidden_size, I = c.intermediate_size;
  const bool gpt2 = c.arch == ModelArch::gpt2;
  BlockParts parts;
  parts.prefix = prefix;
  parts.layer = layer;
  parts.width = D;
  parts.residual_dropout = residual_dropout;
  if (gpt2) {
    const std::string ln1 = prefix + ".ln_1";
    parts.norm1 = Norm::layer_norm(ln1, &ps.add(ln1 + ".weight", {D}), &ps.add(ln1 + ".bias", {D}), c.norm_eps);
  } else {
    const std::string ln1 = prefix + ".input_layernorm";
    parts.norm1 = Norm::rms_norm(ln1, &ps.add(ln1 + ".weight", {D}), c.norm_eps);
  }

  parts.attention_prefix = prefix + (gpt2 ? ".attn" : ".self_attn");
  parts.attention = make_attention_layer({c, layer, parts.attention_prefix, ps, attention_options(c)});

  if (gpt2) {
    const std::string ln2 = prefix + ".ln_2";
    parts.norm2 = Norm::layer_norm(ln2, &ps.add(ln2 + ".weight", {D}), &ps.add(ln2 + ".bias", {D}), c.norm_eps);
    const std::string m = prefix + ".mlp";
    // Conv1D weights: [in, out] in the checkpoint, [out, in] here.
    Linear fc(&ps.add(m + ".c_fc.weight", {I, D}, true), &ps.add(m + ".c_fc.bias", {I}));
    Linear proj(&ps.add(m + ".c_proj.weight", {D, I}, true), &ps.add(m + ".c_proj.bias", {D}));
    parts.mlp = Mlp::gelu(m, fc, proj, gelu_kind_of(c));
  } else {
    CHECK(c.activation == "silu", "config '", c.source, "': hidden_act '", c.activation,
          "' is not implemented; Qwen models use silu (SwiGLU)");
    const std::string ln2 = prefix + ".post_attention_layernorm";
    parts.norm2 = Norm::rms_norm(ln2, &ps.add(ln2 + ".weight", {D}), c.norm_eps);
    const std::string m = prefix + ".mlp";
    Linear gate(&ps.add(m + ".gate_proj.weight", {I, D}), nullptr);
    Linear up(&ps.add(m + ".up_proj.weight", {I, D}), nullptr);
    Linear down(&ps.add(m + ".down_proj.weight", {D, I}), nullptr);
    parts.mlp = Mlp::swiglu(m, gate, up, down);
  }
  return parts;
}

}  // namespace

DecoderBlock::DecoderBlock(const ModelConfig& c, int64_t layer, const std::string& prefix, ParamStore& ps,
                           double residual_dropout)
    : DecoderBlock(hf_block_parts(c, layer, prefix, ps, residual_dropout)) {}

DecoderBlock::DecoderBlock(BlockParts parts)
    : name_(parts.prefix),
      layer_(parts.layer),
      width_(parts.width),
      norm1_(parts.norm1),
      norm2_(parts.norm2),
      attn_(std::move(parts.attention)),
      mlp_(parts.mlp) {
  CHECK(attn_, "block '", parts.prefix, "' has no attention layer");
  const std::string attn_prefix = parts.attention_prefix.empty() ? parts.prefix + ".attn" : parts.attention_prefix;
  attn_drop_ = Dropout(attn_prefix + ".resid_dropout", parts.residual_dropout);
  mlp_drop_ = Dropout(parts.prefix + ".mlp.dropout", parts.residual_dropout);
}

void DecoderBlock::set_training(bool training) {
  attn_->set_training(training);
  attn_drop_.set_training(training);
  mlp_drop_.set_training(training);
  mlp_.set_training(training);
}

void DecoderBlock::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) {
  const int64_t rows = B * T;
  const std::string& n = name_.name;
  h1_ = p.saved(dt, {B, T, width_}, n + ".norm1_out");
  mid_ = p.saved(dt, {B, T, width_}, n + ".mid");
  h2_ = p.saved(dt, {B, T, width_}, n + ".norm2_out");
  norm1_.plan(p, ctx, dt, rows, width_);
  norm2_.plan(p, ctx, dt, rows, width_);
  attn_->plan(p, ctx, dt, B, T);
  mlp_.plan(p, dt, B, T);
  branch_ = p.scratch("block.branch", dt, {B, T, width_});
  d_norm_ = p.scratch("block.d_norm_out", dt, {B, T, width_});
  d_drop_ = p.scratch("block.d_branch", dt, {B, T, width_});
}

void DecoderBlock::forward(Ctx& ctx, const Tensor& x, const Tensor& out) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  norm1_.forward(ctx, x, h1_);
  attn_->forward(ctx, h1_, branch_);
  attn_drop_.forward(ctx, branch_);
  residual_forward(ctx, {mid_, x, branch_});
  norm2_.forward(ctx, mid_, h2_);
  mlp_.forward(ctx, h2_, branch_);
  mlp_drop_.forward(ctx, branch_);
  residual_forward(ctx, {out, mid_, branch_});
  if (ctx.probes && ctx.probes->wants(layer_, "hidden")) ctx.probes->take_activation(ctx, layer_, "hidden", out);
}

size_t DecoderBlock::cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  const int64_t rows = B * T;
  const size_t act = Arena::aligned(size_t(rows * width_) * dtype_size(dt));
  const size_t norms = std::max(norm1_.inference_bytes(dt, rows), norm2_.inference_bytes(dt, rows));
  const size_t branch = std::max(attn_->cached_scratch_bytes(dt, B, T, S), mlp_.inference_bytes(dt, rows));
  return 3 * act + norms + branch;
}

void DecoderBlock::forward_cached(Ctx& ctx, const Tensor& x, const Tensor& out, CachedAttentionArgs a, Arena& scratch) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  const int64_t B = x.dim(0), T = x.dim(1);
  const DType dt = x.dtype;
  Tensor h = scratch.alloc(dt, {B, T, width_}, "block.inference_norm_out");
  Tensor mid = scratch.alloc(dt, {B, T, width_}, "block.inference_mid");
  Tensor branch = scratch.alloc(dt, {B, T, width_}, "block.inference_branch");
  // The norms' statistics and the sub-layers' buffers live above this mark, one sub-layer at a time.
  const size_t mark = scratch.used();
  norm1_.forward_inference(ctx, x, h, scratch);
  scratch.rewind(mark);
  a.x = h;
  a.y = branch;
  a.scratch = &scratch;
  attn_->forward_cached(ctx, a);
  scratch.rewind(mark);
  residual_forward(ctx, {mid, x, branch});
  norm2_.forward_inference(ctx, mid, h, scratch);
  scratch.rewind(mark);
  mlp_.forward_inference(ctx, h, branch, scratch);
  scratch.rewind(mark);
  residual_forward(ctx, {out, mid, branch});
  if (ctx.probes && ctx.probes->wants(layer_, "hidden")) ctx.probes->take_activation(ctx, layer_, "hidden", out);
}

void DecoderBlock::backward(Ctx& ctx, const Tensor& x, const Tensor& dres) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  // dres = ∂L/∂out = ∂L/∂mid (direct path) + the MLP branch, which norm2's backward adds.
  Tensor d_branch = dres;
  if (mlp_drop_.applied()) {
    mlp_drop_.backward(ctx, dres, d_drop_);
    d_branch = d_drop_;
  }
  mlp_.backward(ctx, d_branch, h2_, d_norm_);
  norm2_.backward(ctx, d_norm_, mid_, dres, true);

  d_branch = dres;
  if (attn_drop_.applied()) {
    attn_drop_.backward(ctx, dres, d_drop_);
    d_branch = d_drop_;
  }
  attn_->backward(ctx, d_branch, h1_, d_norm_);
  norm1_.backward(ctx, d_norm_, x, dres, true);
}

}  // namespace attnlab
