#pragma once
// Float/double overloads of the libm functions the activation and RoPE math needs, usable from
// ATTNLAB_HD code: the CPU loops instantiate them with float or double, the kernels with float.
// (Plain `erf(x)` would silently promote a float to double on the host.)
#include <cmath>

#include "core/hd.h"

namespace attnlab {

ATTNLAB_HD float hd_erf(float x) { return erff(x); }
ATTNLAB_HD double hd_erf(double x) { return erf(x); }
ATTNLAB_HD float hd_exp(float x) { return expf(x); }
ATTNLAB_HD double hd_exp(double x) { return exp(x); }
ATTNLAB_HD float hd_tanh(float x) { return tanhf(x); }
ATTNLAB_HD double hd_tanh(double x) { return tanh(x); }

// Full-accuracy sine and cosine (never the fast intrinsics: RoPE angles reach ~1e5 radians).
ATTNLAB_HD void hd_sincos(float x, float* s, float* c) {
#if defined(__CUDA_ARCH__)
  sincosf(x, s, c);
#else
  *s = std::sin(x);
  *c = std::cos(x);
#endif
}
ATTNLAB_HD void hd_sincos(double x, double* s, double* c) {
#if defined(__CUDA_ARCH__)
  sincos(x, s, c);
#else
  *s = std::sin(x);
  *c = std::cos(x);
#endif
}

}  // namespace attnlab
