#pragma once
// λ of differential attention per METHODS §3.2/§3.3, shared by the CPU loop (A = double) and
// the CUDA kernel (A = float). The dot products are summed by the caller.
#include "core/ops/hd_math.h"

namespace attnlab {

// paper: λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init, from the two dot products.
template <class A>
ATTNLAB_HD A diff_lambda_paper(A dot1, A dot2, A lambda_init) {
  return hd_exp(dot1) - hd_exp(dot2) + lambda_init;
}

// seed: λ_h = exp(λ'_h) + 0.05 (kDiffLambdaSeedOffset).
template <class A>
ATTNLAB_HD A diff_lambda_seed(A raw) {
  return hd_exp(raw) + A(0.05);
}

// paper backward: the factor of parameter i's partner (order q1, k1, q2, k2; partners k1, q1,
// k2, q2): dλ·e1 for λq1/λk1, −dλ·e2 for λq2/λk2.
template <class A>
ATTNLAB_HD A diff_lambda_paper_coef(int i, A dlambda, A e1, A e2) {
  return i < 2 ? dlambda * e1 : -dlambda * e2;
}

// seed backward: dλ' = dλ·exp(λ').
template <class A>
ATTNLAB_HD A diff_lambda_seed_grad(A dlambda, A raw) {
  return dlambda * hd_exp(raw);
}

}  // namespace attnlab
