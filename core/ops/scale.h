#pragma once
// Scale / axpby: y = alpha·x + beta·y over n elements (any shape; x and y hold n each).
// It replaces the K = 1 GEMM against a one-element tensor that layers used for a constant
// factor (the differential layer's (1 − λ_init), the seed decoder's √D position scale).
//
// scale_forward:   y = alpha·x + beta·y. beta = 0 never reads y (it may hold anything, NaN
//                  included). x may be y itself (in-place scaling).
// scale_backward:  dx = alpha·dy, or dx += alpha·dy with accumulate_dx. The gradient of the old
//                  y is beta·dy: with beta = 1 (an add into the residual stream) that is dy
//                  itself; otherwise the caller asks scale_forward for it. dx may be dy itself.
//
// Scalars are doubles: the f64 CPU path uses them as given, f32 and bf16 round them to float
// (the arithmetic is float for those dtypes), as matmul does.
// dtypes:  CPU f32 and f64; CUDA f32 and bf16 (arithmetic in float). x and y share the dtype.
#include "core/ctx.h"

namespace attnlab {

struct ScaleArgs {
  Tensor y;           // [n] written (beta = 0) or updated
  Tensor x;           // [n] read; may alias y exactly
  double alpha = 1.0;
  double beta = 0.0;
};
struct ScaleBackwardArgs {
  Tensor dx;          // [n] written, or accumulated with accumulate_dx
  Tensor dy;          // [n] gradient of y; may alias dx exactly
  double alpha = 1.0;
  bool accumulate_dx = false;
};

void scale_forward(Ctx& ctx, const ScaleArgs& a);
void scale_backward(Ctx& ctx, const ScaleBackwardArgs& a);

namespace cuda {
// y = alpha·x + beta·y (beta = 0: y not read); arguments already validated.
void scale(Ctx& ctx, const Tensor& y, const Tensor& x, double alpha, double beta);
}  // namespace cuda

}  // namespace attnlab
