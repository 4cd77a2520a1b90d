#pragma once
// The "standard" attention variant on the attention shell (core/layers/attention_shell.h): the
// attention of GPT-2, Qwen2/2.5 and Qwen3 (METHODS §6, P1, P2, P4–P6) and of the from-scratch
// decoders' baseline (METHODS §3.4).
//
//   q, k, v  the shell's projections, heads-first (GPT-2: bands of the fused c_attn; Qwen3: q/k
//            RMSNorm per head; Qwen: RoPE rotate-half, θ from config)
//   o = attention(q, k, v)   causal, GQA groups, scale d^-1/2, softmax (or linear / ramp by option)
//   y = merge(o) Woᵀ (+ bo)  [B, T, D]   (scratch seed preset: then LayerNorm(D), METHODS §3.4)
//
// The step saves the probability map and its row statistics (the materialized backward reads them),
// or with the fused backend (model.attention.impl) only the row statistics (and ramp's un-mixed
// outputs; the shell keeps the step's output for the fused backward's Δ).
//
// Options (config.json "attnlab": {"attention": {...}}): "norm": "softmax" | "linear" | "ramp",
// "ramp_alpha" (ramp only) — the normalisations the attention op implements (METHODS §4.4–4.5).
// The from-scratch decoders pass "scratch": "paper" | "seed" (their projections' names and biases).
#include <memory>

#include "core/layers/attention_shell.h"

namespace attnlab {

class StandardAttention : public AttentionShell {
 public:
  explicit StandardAttention(const AttentionLayerArgs& args);

  const AttentionSpec& spec() const { return spec_; }
  // GPT-2's attn_pdrop in training mode (the op's spec.dropout; core/ops/attention.h).
  void set_training(bool training) override { training_ = training; }
  double attention_dropout() const { return attn_pdrop_; }
  // The dropout a forward planned now would apply (training mode at plan time; see attend).
  double training_dropout() const override { return training_ ? attn_pdrop_ : 0.0; }
  // The saved probability map [B, Hq, T, T] of the last forward (analyses read it); undefined
  // when the fused backend runs (model.attention.impl: materialized keeps it).
  const Tensor& probs() const { return probs_; }

 protected:
  void plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) override;
  void attend(Ctx& ctx, const AttendInputs& in, const Tensor& out) override;
  void attend_backward(Ctx& ctx, const AttendInputs& in, const AttendGrads& g) override;
  const AttentionSpec& attention_spec() const override { return spec_; }
  size_t attend_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const override;

 private:
  // The inputs the forward and backward op calls share.
  void fill_inputs(AttentionInputs& a, const AttendInputs& in) const;
  AttentionSpec spec_;
  double attn_pdrop_ = 0;
  bool training_ = false;
  bool dropped_ = false;          // the last training forward applied dropout
  uint64_t dropout_offset_ = 0;   // its Philox counters (the backward regenerates the mask)
  // saved
  Tensor probs_, lse_, row_min_, row_sum_, out_parts_;
  // scratch
  Tensor workspace_;
};

// The factory registered as "standard".
std::unique_ptr<AttentionLayer> make_standard_attention(const AttentionLayerArgs& args);

}  // namespace attnlab
