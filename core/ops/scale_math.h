#pragma once
// One element of scale / axpby, shared by the CPU loop and the CUDA kernel. `A` is the compute
// type: float for f32/bf16 tensors, double for the f64 CPU path.
#include "core/hd.h"

namespace attnlab {

// beta = 0 must not read y: 0·NaN would poison the output (BLAS's convention).
template <class A>
ATTNLAB_HD A scale_value(A x, A y, A alpha, A beta) {
  return beta == A(0) ? alpha * x : alpha * x + beta * y;
}

}  // namespace attnlab
