#pragma once
// The "standard" attention layer of GPT-2, Qwen2/2.5 and Qwen3 (METHODS §6, P1, P2, P4–P6):
//
//   q, k, v = x Wqᵀ + bq, x Wkᵀ + bk, x Wvᵀ + bv     [B, T, H·d]   (GPT-2: bands of the fused c_attn)
//   Qwen3:   q, k ← RMSNorm per head (q_norm, k_norm, one [d] weight each)
//   Qwen:    q, k ← RoPE (rotate-half, θ from config), written heads-first [B, H, T, d]
//   GPT-2:   q, k ← permute to [B, H, T, d];  v → [B, Hkv, T, d] (permute) for every architecture
//   o = attention(q, k, v)   causal, GQA groups, scale d^-1/2, softmax (or linear / ramp by option)
//   y = merge(o) Woᵀ (+ bo)                           [B, T, D]
//
// Saved for backward: q/k projection outputs (only with q/k norm, for its backward) and their
// norm statistics; q, k, v heads-first; the probability map and its row statistics; the merged
// heads (o_proj's input). Everything else is scratch shared by all layers.
//
// Options (config.json "attnlab": {"attention": {...}}): "norm": "softmax" | "linear" | "ramp",
// "ramp_alpha" (ramp only) — the normalisations the attention op implements (METHODS §4.4–4.5).
#include <memory>

#include "core/layers/attention_layer.h"
#include "core/layers/layer_name.h"
#include "core/layers/linear.h"
#include "core/layers/norm.h"
#include "core/ops/attention.h"
#include "core/ops/rope.h"

namespace attnlab {

class StandardAttention : public AttentionLayer {
 public:
  explicit StandardAttention(const AttentionLayerArgs& args);

  const std::string& name() const override { return name_.name; }
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) override;
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y) override;
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) override;
  // KV-cache inference: the forward above with the new keys/values written into the cache (RoPE at
  // the given positions) and the attention over the cache's first `keys` slots.
  size_t cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const override;
  void forward_cached(Ctx& ctx, const CachedAttentionArgs& args) override;

  const AttentionSpec& spec() const { return spec_; }
  // The saved probability map [B, Hq, T, T] of the last forward (analyses read it).
  const Tensor& probs() const { return probs_; }

 private:
  // One of q and k: projection → (per-head norm) → RoPE or permute → heads-first.
  struct Branch {
    Linear proj;
    RmsNorm norm;       // qk_norm only
    Param* norm_weight = nullptr;  // qk_norm only: the norm's [d] weight and eps, for forward_cached
    double norm_eps = 0;
    int64_t heads = 0;
    Tensor raw;         // saved [B, T, H, d] projection output (qk_norm only)
    Tensor heads_first; // saved [B, H, T, d]
  };
  void branch_forward(Ctx& ctx, Branch& b, const Tensor& x);
  struct CachedBuffers;
  // Carves the buffers of one forward_cached call from `arena`, or (arena null) only adds up their bytes.
  CachedBuffers cached_buffers(Arena* arena, DType dt, int64_t B, int64_t T, int64_t S, size_t* bytes) const;
  // Gradient of the branch's heads-first output → gradient of its projection output → dx.
  void branch_backward(Ctx& ctx, Branch& b, const Tensor& d_heads_first, const Tensor& x, const Tensor& dx,
                       bool accumulate_dx);

  LayerName name_;
  int64_t D_ = 0, d_ = 0;
  bool qk_norm_ = false, rope_ = false;
  RopeSpec rope_spec_;
  AttentionSpec spec_;
  Branch q_, k_;
  Linear v_proj_, o_proj_;
  int64_t B_ = 0, T_ = 0;
  // saved
  Tensor v_hf_, probs_, lse_, row_min_, row_sum_, merged_;
  // scratch
  Tensor tok_, tok2_, out_hf_, d_merged_, d_out_hf_, dq_hf_, dk_hf_, dv_hf_, workspace_;
};

// The factory registered as "standard".
std::unique_ptr<AttentionLayer> make_standard_attention(const AttentionLayerArgs& args);

}  // namespace attnlab
