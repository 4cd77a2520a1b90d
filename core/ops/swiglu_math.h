#pragma once
// SwiGLU per element (METHODS P7), shared by the CPU loop and the CUDA kernel. `A` is the
// compute type: float for f32/bf16 tensors, double for the f64 CPU path.
#include "core/ops/hd_math.h"

namespace attnlab {

// σ(a) = 1/(1 + e^−a). For a ≪ 0, e^−a overflows to +inf and σ = 0 exactly, which keeps
// silu and silu' finite (0 and 0): no NaN from inf·0.
template <class A>
ATTNLAB_HD A sigmoid(A a) {
  return A(1) / (A(1) + hd_exp(-a));
}

// h = silu(a)·u = a·σ(a)·u.
template <class A>
ATTNLAB_HD A swiglu_value(A a, A u) {
  return a * sigmoid(a) * u;
}

// da = dh·u·silu'(a), silu'(a) = σ(1 + a(1 − σ)); du = dh·silu(a).
template <class A>
ATTNLAB_HD void swiglu_grad(A a, A u, A dh, A* da, A* du) {
  const A s = sigmoid(a);
  *da = dh * u * (s * (A(1) + a * (A(1) - s)));
  *du = dh * (a * s);
}

}  // namespace attnlab
