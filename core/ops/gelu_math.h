#pragma once
// GELU and its derivative (METHODS P8), shared by the CPU loop and the CUDA kernel. `A` is the
// compute type: float for f32/bf16 tensors, double for the f64 CPU path.
#include "core/ops/hd_math.h"

namespace attnlab {

// Exact form: gelu(x) = x·Φ(x), Φ the standard normal CDF = ½(1 + erf(x/√2)).
template <class A>
ATTNLAB_HD A gelu_erf(A x) {
  const A inv_sqrt2 = A(0.70710678118654752440);
  return A(0.5) * x * (A(1) + hd_erf(x * inv_sqrt2));
}
// gelu'(x) = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π).
template <class A>
ATTNLAB_HD A gelu_erf_grad(A x) {
  const A inv_sqrt2 = A(0.70710678118654752440), inv_sqrt_2pi = A(0.39894228040143267794);
  const A cdf = A(0.5) * (A(1) + hd_erf(x * inv_sqrt2));
  const A pdf = inv_sqrt_2pi * hd_exp(A(-0.5) * x * x);
  return cdf + x * pdf;
}

// Tanh approximation (GPT-2 "gelu_new"): ½x(1 + tanh(c(x + 0.044715x³))), c = √(2/π).
template <class A>
ATTNLAB_HD A gelu_tanh(A x) {
  const A c = A(0.79788456080286535588), k = A(0.044715);
  const A t = hd_tanh(c * (x + k * x * x * x));
  return A(0.5) * x * (A(1) + t);
}
// d/dx: ½(1 + t) + ½x(1 − t²)·c·(1 + 3·0.044715x²).
template <class A>
ATTNLAB_HD A gelu_tanh_grad(A x) {
  const A c = A(0.79788456080286535588), k = A(0.044715);
  const A x2 = x * x;
  const A t = hd_tanh(c * (x + k * x2 * x));
  return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * c * (A(1) + A(3) * k * x2);
}

}  // namespace attnlab
