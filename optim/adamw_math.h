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

// Products and sums, each rounded on its own. nvcc contracts x·y + z into one FMA where it sees
// fit, and it saw fit differently where the update is inlined into different loops of the CUDA
// kernel (the full-chunk float4 path and the tail path): an element's new value then depended on
// how its tensor was chunked, and ZeRO-1 chunks a parameter differently (at bucket boundaries) —
// seen on an H100 as 1-ulp differences between ZeRO-1 and plain runs. The _rn intrinsics are
// never contracted. The host build does not contract either (no FMA in the x86-64 baseline).
ATTNLAB_HD float adamw_mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
ATTNLAB_HD float adamw_add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
ATTNLAB_HD double adamw_mul(double a, double b) { return a * b; }
ATTNLAB_HD double adamw_add(double a, double b) { return a + b; }

// g: the gradient already multiplied by the caller's scale (clipping).
template <class A>
ATTNLAB_HD void adamw_update(A& p, A& m, A& v, A g, const AdamWCoef<A>& c, bool decay) {
  if (decay) p = adamw_mul(p, c.decay_factor);
  m = adamw_add(adamw_mul(c.beta1, m), adamw_mul(c.one_minus_beta1, g));
  v = adamw_add(adamw_mul(c.beta2, v), adamw_mul(adamw_mul(c.one_minus_beta2, g), g));
  const A denom = adamw_add(adamw_sqrt(v) / c.sqrt_bc2, c.eps);
  p = adamw_add(p, -adamw_mul(c.step_size, m / denom));
}

}  // namespace attnlab
