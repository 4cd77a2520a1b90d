#pragma once
// The dual-form identity of relaxed linear attention (METHODS §2.2), checked in double on a
// model's own projections: for a layer's W_Q, W_K, W_V (every head, GQA groups shared as the model
// shares them) and attention inputs X' (demonstration tokens) and X (query tokens, the last one
// giving q = W_Q x_M), the causal linear-attention output at the last position,
//   F(q) = Σ_{j ≤ M'} (W_V z_j)(W_K z_j)ᵀ q  over every token z_j of [X'; X],
// equals W_ZSL q + ΔW_ICL q with W_ZSL = Σ_{x ∈ X} (W_V x)(W_K x)ᵀ and ΔW_ICL = Σ_{x' ∈ X'} (W_V x')(W_K x')ᵀ
// built as explicit matrices. No softmax, no scaling, no q/k norm or RoPE (the relaxation).
#include <cstdint>
#include <span>
#include <vector>

namespace attnlab::icl {

struct DualFormInputs {
  int64_t D = 0, Hq = 0, Hkv = 0, d = 0;
  std::vector<double> Wq, Wk, Wv;  // [Hq*d, D], [Hkv*d, D], [Hkv*d, D] row-major (y = W x)
  std::vector<double> Xd, Xq;      // [N', D], [M, D] row-major
};

struct DualFormResult {
  std::vector<double> attention;  // [Hq*d]: the linear-attention output at the last position
  std::vector<double> dual;       // [Hq*d]: W_ZSL q + ΔW_ICL q
  double max_abs_diff = 0, max_abs = 0;
};

DualFormResult dual_form_check(const DualFormInputs& in);

}  // namespace attnlab::icl
