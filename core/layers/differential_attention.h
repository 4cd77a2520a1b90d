#pragma once
// The "differential" attention layer (METHODS §3.2 PAPER, §3.3 ORIGINAL seed variant), option
// "preset": "paper" (default) | "seed".
//
// A variant on the attention shell (core/layers/attention_shell.h), which does the projections,
// the per-head output norm (paper), the output projection, LayerNorm (seed) and the scale.
// Both presets project q and k to H heads of 2d, each head's block of 2d split into Q1 = first d,
// Q2 = second d. (The paper's "sub-head 2i is Q1, 2i+1 is Q2" is the same row layout.) The
// attention op computes O = (A1 − λA2) V from (Q1, K1), (Q2, K2) and returns dλ.
//
//   paper: H = num_heads / 2, d = head_dim, V of width 2d, no biases;
//          λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init(l), λ_init(l) = 0.8 − 0.6·exp(−0.3·l);
//          Ô = RMSNorm_{2d}(O) per head (one shared weight "subln.weight", eps 1e−5);
//          y = (1 − λ_init)·concat(Ô) Woᵀ   (the scale is the GEMM's alpha).
//   seed:  H = num_heads, d = head_dim, V of width d, q/k/v/out with biases;
//          λ_i = exp(λ'_i) + 0.05 per head; y = (1 − lambda_init)·LayerNorm_D(concat(O) Woᵀ + bo),
//          lambda_init = option "lambda_init" (0.8, the model-level default of the seed).
//
// λ and its re-parameterisation's backward (§3.2 step 5, §3.3) run on the device (the diff_lambda
// op): the step has no host synchronisation.
//
// Positions: on a RoPE model (Qwen2/Qwen3, or a from-scratch decoder with model.decoder.rope) the
// shell rotates each of the 2H sub-heads of dim d with the model's own rotation (rotate-half on
// Qwen after its q/k norm, interleaved on the scratch decoders); otherwise none (learned positions).
//
// Generation (forward_cached): the layer's K cache [B, 2H, S_cap, d] holds the two halves apart,
// as [2, B, H, S_cap, d] (K1 of every head, then K2), so the attention op reads K1 and K2 in place;
// the V cache is [B, H, S_cap, dv]. λ and the maps come from the call's scratch.
#include <memory>

#include "core/layers/attention_shell.h"

namespace attnlab {

// λ_init(l) = 0.8 − 0.6·exp(−0.3·l), l the 0-based layer index (METHODS §3.2).
double diff_lambda_init(int64_t layer);

class DifferentialAttention : public AttentionShell {
 public:
  enum class Preset { paper, seed };
  explicit DifferentialAttention(const AttentionLayerArgs& args);

  Preset preset() const { return preset_; }
  const AttentionSpec& spec() const { return spec_; }
  int64_t heads() const { return H_; }
  // The λ of the last forward: one value (paper) or one per head (seed). Read from the device
  // when asked (analyses, tests); the step itself never copies λ to the host.
  const std::vector<double>& lambda_values() const;
  double lambda_init() const { return lambda_init_; }
  // Saved maps of the last forward [B, H, T, T] (analyses combine them as A1 − λA2); undefined
  // with the fused backend (model.attention.impl: materialized keeps them).
  const Tensor& probs1() const { return probs_; }
  const Tensor& probs2() const { return probs2_; }
  // Analyses: while set, every forward captures the final map P = A1 − λA2 of the query rows
  // `rows` (i32 [n]) into `probs` (acc [B, H, n, T]) through the attention op's captures.
  // Undefined tensors switch it off.
  void set_probability_capture(const Tensor& rows, const Tensor& probs) {
    capture_rows_ = rows;
    capture_probs_ = probs;
  }

 protected:
  void plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) override;
  void attend(Ctx& ctx, const AttendInputs& in, const Tensor& out) override;
  void attend_backward(Ctx& ctx, const AttendInputs& in, const AttendGrads& g) override;
  size_t attend_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const override;
  void write_kv_cache(Ctx& ctx, const CachedAttentionArgs& args, const Tensor& k_tok, const Tensor& v_tok,
                      Arena& scratch) override;
  const AttentionSpec& attention_spec() const override { return spec_; }
  // Training: λ into the saved slot (a forward_cached without a plan evaluates its own in attend).
  void before_forward(Ctx& ctx) override {
    if (lambda_.defined()) compute_lambda(ctx, lambda_);
  }

 private:
  // Evaluates λ on the device from the parameters into `out` ([1] paper, [H] seed).
  void compute_lambda(Ctx& ctx, const Tensor& out);
  // attend() of forward_cached: q heads-first [B, 2H, T, d], k the half-major K cache.
  void attend_cached(Ctx& ctx, const AttendInputs& in, const Tensor& out);
  // Backward of λ's re-parameterisation from the op's dλ (accumulates into the parameters' grads).
  void lambda_backward(Ctx& ctx, const Tensor& dlambda);
  // The shell's heads-first [B, 2H, T, d] (sub-head 2h = half 1 of head h) → [2, B·H, T, d], and back.
  void split_pairs(Ctx& ctx, const Tensor& hf, const Tensor& pair);
  void merge_pairs(Ctx& ctx, const Tensor& dpair, const Tensor& dhf);
  // The inputs the forward and backward attention calls share: spec, both q/k halves, v, λ and
  // the saved maps and row statistics.
  void fill_attention_inputs(AttentionInputs& in, AttentionSaved& saved, const Tensor& v) const;

  Preset preset_ = Preset::paper;
  int64_t D_ = 0, H_ = 0, d_ = 0, dv_ = 0;
  double lambda_init_ = 0;  // paper: λ_init(l); seed: the model-level constant (0.8)
  AttentionSpec spec_;
  Param* lambda_vecs_[4] = {nullptr, nullptr, nullptr, nullptr};  // paper: λq1, λk1, λq2, λk2
  Param* lambda_raw_ = nullptr;                                   // seed: λ' [H]
  mutable std::vector<double> lambda_host_;
  Ctx last_ctx_;  // the context of the last forward (lambda_values reads λ through it)
  Tensor capture_rows_, capture_probs_;
  int64_t B_ = 0, T_ = 0;
  // saved
  Tensor q_pair_, k_pair_, probs_, probs2_, lse_, lse2_, row_min_, row_min2_, row_sum_, row_sum2_, lambda_;
  // scratch
  Tensor dq_pair_, dk_pair_, dlambda_, workspace_, out_parts_;
};

// The factory registered as "differential".
std::unique_ptr<AttentionLayer> make_differential_attention(const AttentionLayerArgs& args);

}  // namespace attnlab
