#pragma once
// The "differential" attention layer (METHODS §3.2 PAPER, §3.3 ORIGINAL seed variant), option
// "preset": "paper" (default) | "seed".
//
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
// λ is a handful of scalars computed from d-length (or H-length) parameters: it is evaluated on
// the host from the parameter values (a device→host copy of ≤ 4d numbers per layer and step), and
// its re-parameterisation's backward (§3.2 step 5, §3.3) likewise runs on the host from the op's dλ.
#include <memory>

#include "core/layers/attention_layer.h"
#include "core/layers/layer_name.h"
#include "core/layers/linear.h"
#include "core/layers/norm.h"
#include "core/ops/attention.h"

namespace attnlab {

// λ_init(l) = 0.8 − 0.6·exp(−0.3·l), l the 0-based layer index (METHODS §3.2).
double diff_lambda_init(int64_t layer);

class DifferentialAttention : public AttentionLayer {
 public:
  enum class Preset { paper, seed };
  explicit DifferentialAttention(const AttentionLayerArgs& args);

  const std::string& name() const override { return name_.name; }
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) override;
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y) override;
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) override;

  Preset preset() const { return preset_; }
  const AttentionSpec& spec() const { return spec_; }
  int64_t heads() const { return H_; }
  // The λ of the last forward: one value (paper) or one per head (seed).
  const std::vector<double>& lambda_values() const { return lambda_host_; }
  double lambda_init() const { return lambda_init_; }
  // Saved maps of the last forward [B, H, T, T]: A1 and A2 (analyses combine them as A1 − λA2).
  const Tensor& probs1() const { return probs_; }
  const Tensor& probs2() const { return probs2_; }
  // Analyses: while set, every forward captures the final map P = A1 − λA2 of the query rows
  // `rows` (i32 [n]) into `probs` (acc [B, H, n, T]) through the attention op's captures.
  // Undefined tensors switch it off.
  void set_probability_capture(const Tensor& rows, const Tensor& probs) {
    capture_rows_ = rows;
    capture_probs_ = probs;
  }

 private:
  // Evaluates λ on the host from the parameters and uploads it to lambda_.
  void compute_lambda(Ctx& ctx);
  // Backward of λ's re-parameterisation from the op's dλ (accumulates into the parameters' grads).
  void lambda_backward(Ctx& ctx, const Tensor& dlambda);
  // y = alpha·x elementwise (a K = 1 GEMM against the one-element tensor one_).
  void scale(Ctx& ctx, const Tensor& y, const Tensor& x, double alpha);
  // [B, T, H·2d] projection output → Q1, Q2 heads-first in one [2, B·H, T, d] tensor, and back.
  void split_pairs(Ctx& ctx, const Tensor& tok, const Tensor& pair);
  void merge_pairs(Ctx& ctx, const Tensor& dpair, const Tensor& dtok);
  // The inputs the forward and backward attention calls share (AttentionArgs or
  // AttentionBackwardArgs): spec, both q/k halves, v, λ and the saved maps and row statistics.
  template <class Args>
  void fill_attention_inputs(Args& a) const;

  LayerName name_;
  Preset preset_ = Preset::paper;
  int64_t layer_ = 0, D_ = 0, H_ = 0, d_ = 0, dv_ = 0;
  double lambda_init_ = 0;  // paper: λ_init(l); seed: the model-level constant (0.8)
  double out_scale_ = 0;    // 1 − lambda_init_
  AttentionSpec spec_;
  Linear q_proj_, k_proj_, v_proj_;
  Param* o_weight_ = nullptr;  // paper: Wo, applied with the GEMM's alpha
  Linear o_proj_;              // seed: Linear(D→D, bias)
  RmsNorm sub_norm_;           // paper: headwise RMSNorm over 2d
  LayerNorm out_norm_;         // seed: LayerNorm(D)
  Param* lambda_vecs_[4] = {nullptr, nullptr, nullptr, nullptr};  // paper: λq1, λk1, λq2, λk2
  Param* lambda_raw_ = nullptr;                                   // seed: λ' [H]
  std::vector<double> lambda_host_;
  Tensor capture_rows_, capture_probs_;
  int64_t B_ = 0, T_ = 0;
  // saved
  Tensor q_pair_, k_pair_, v_hf_, probs_, probs2_, lse_, lse2_, lambda_, out_hf_, merged_, lin_out_, one_;
  // scratch
  Tensor tok_, tok2_, normed_, d_merged_, d_out_hf_, dq_pair_, dk_pair_, dv_hf_, dlambda_, workspace_;
};

// The factory registered as "differential".
std::unique_ptr<AttentionLayer> make_differential_attention(const AttentionLayerArgs& args);

}  // namespace attnlab
