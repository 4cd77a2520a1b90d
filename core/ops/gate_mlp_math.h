#pragma once
// Per-element arithmetic of the uncertainty gates (METHODS §1.3-1.4), shared by the CPU loops and
// the CUDA kernels. `A` is the compute type: float for f32/bf16 tensors, double for f64.
#include "core/ops/gelu_math.h"
#include "core/ops/hd_math.h"

namespace attnlab {

// a3 = c2[d] + Σ_j w2[d, j]·a2[j] over the 16 hidden units; `w` is row d of fc2_w.
template <class A, class W>
ATTNLAB_HD A gate_fc2_row(const W* w, A bias, const A* a2) {
  A s = bias;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int j = 0; j < 16; ++j) s += A(w[j]) * a2[j];
  return s;
}

// adj = 0.2·tanh(a3); with zero fc2 (the init), a3 = 0 and adj = 0 exactly, so y == x bit for bit.
template <class A>
ATTNLAB_HD A gate_adj(A a3) {
  return A(0.2) * hd_tanh(a3);
}

// One element of the gate backward: given dy = ∂L/∂y and y = x(1 + adj), adj = 0.2·tanh(a3),
//   ∂L/∂x (direct path) = dy·(1 + adj),  ∂L/∂a3 = dy·x·0.2(1 − t²), t = tanh(a3).
// (1 − t)(1 + t) rather than 1 − t²: accurate where |t| is near 1.
template <class A>
ATTNLAB_HD void gate_elem_grad(A a3, A x, A dy, A* dx_direct, A* da3) {
  const A t = hd_tanh(a3);
  *dx_direct = dy * (A(1) + A(0.2) * t);
  *da3 = dy * x * (A(0.2) * (A(1) - t) * (A(1) + t));
}

}  // namespace attnlab
