#pragma once
// One pre-norm decoder block, shared by GPT-2 and Qwen2/2.5/3 (METHODS §6):
//
//   h1 = norm1(x);  mid = x + drop(attn(h1));  h2 = norm2(mid);  out = mid + drop(mlp(h2))
//
// GPT-2: ln_1 / ln_2 LayerNorms, GELU-tanh MLP (c_fc, c_proj). Qwen: input_layernorm /
// post_attention_layernorm RMSNorms, SwiGLU MLP. The attention layer comes from the variant
// registry (core/layers/attention_layer.h).
//
// Saved: h1, mid, h2 (x and out belong to the model's residual stream) and the sublayers' own.
// Backward walks the residual stream with ONE gradient buffer: dres holds ∂L/∂out on entry and
// ∂L/∂x on return; each norm's backward adds its branch's contribution into it (accumulate_dx).
#include <memory>
#include <string>

#include "core/io/hf_config.h"
#include "core/layers/attention_layer.h"
#include "core/layers/dropout.h"
#include "core/layers/layer_name.h"
#include "core/layers/mlp.h"
#include "core/layers/norm.h"

namespace attnlab {

// A block's sublayers, built by a model (its names, norms and MLP) and handed to the block.
struct BlockParts {
  std::string prefix;  // "transformer.h.3", "model.layers.3", "blocks.3"
  int64_t layer = 0;
  int64_t width = 0;   // D
  Norm norm1, norm2;
  std::unique_ptr<AttentionLayer> attention;
  Mlp mlp;
  std::string attention_prefix;  // for the residual dropout's name
  double residual_dropout = 0;
};

class DecoderBlock {
 public:
  // The GPT-2 / Qwen block: registers the block's parameters under `prefix` ("transformer.h.3",
  // "model.layers.3").
  DecoderBlock(const ModelConfig& config, int64_t layer, const std::string& prefix, ParamStore& params,
               double residual_dropout);
  // Any block of this shape (the from-scratch decoders build theirs with their own names and norms).
  explicit DecoderBlock(BlockParts parts);

  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T);
  // x, out [B, T, D]; x must stay untouched until backward.
  void forward(Ctx& ctx, const Tensor& x, const Tensor& out);
  void backward(Ctx& ctx, const Tensor& x, const Tensor& dres);

  // KV-cache inference (generation) through the same layers: x [B, T, D] in, out [B, T, D]
  // (may alias x); `attn` carries the cache, positions and key lengths of the call (its x, y and
  // scratch are set here). Every buffer comes from `scratch` (reset by the caller per block), sized
  // by cached_scratch_bytes; nothing is saved, dropout is off.
  void forward_cached(Ctx& ctx, const Tensor& x, const Tensor& out, CachedAttentionArgs attn, Arena& scratch);
  size_t cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const;

  void set_training(bool training);
  AttentionLayer& attention() { return *attn_; }
  const AttentionLayer& attention() const { return *attn_; }
  int64_t index() const { return layer_; }
  const std::string& name() const { return name_.name; }

 private:
  LayerName name_;
  int64_t layer_ = 0;
  int64_t width_ = 0;  // D
  Norm norm1_, norm2_;
  std::unique_ptr<AttentionLayer> attn_;
  Mlp mlp_;
  Dropout attn_drop_, mlp_drop_;
  Tensor h1_, mid_, h2_;            // saved
  Tensor branch_, d_norm_, d_drop_; // scratch
};

// The MLP and norm choices of each architecture, for the model and for tests.
GeluKind gelu_kind_of(const ModelConfig& config);

}  // namespace attnlab
