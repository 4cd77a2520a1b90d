#pragma once
// The AdamW element update shared by the CPU loop and the CUDA kernel (METHODS P12, PyTorch's
// order of operations: decay the weights, update the moments, then the bias-corrected step
// with eps added outside the square root).
#include <math.h>

#include "core/hd.h"

namespace attnlab {

ATTNLAB_HD float adamw_sqrt(float x) { return sqrtf(x); }
ATTNLAB_HD double adamw_sqrt(double x) { return sqrt(x); }

// Per-step constants, computed once on the host in double and rounded to the update's dtype.
template <class A>
struct AdamWCoef {
  A beta1, one_minus_beta1;
  A beta2, one_minus_beta2;
  A eps;
  A decay_factor;   // 1 − lr·wd, for tensors that decay
  A step_size;      // lr / (1 − β1^t)
  A sqrt_bc2;       // sqrt(1 − β2^t)
};

// g: the gradient already multiplied by the caller's scale (clipping).
template <class A>
ATTNLAB_HD void adamw_update(A& p, A& m, A& v, A g, const AdamWCoef<A>& c, bool decay) {
  if (decay) p *= c.decay_factor;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  const A denom = adamw_sqrt(v) / c.sqrt_bc2 + c.eps;
  p -= c.step_size * (m / denom);
}

}  // namespace attnlab
