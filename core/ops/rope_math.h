#pragma once
// Rotary position embedding arithmetic (METHODS P4), shared by the CPU loop and the CUDA kernel.
// `A` is the compute type: float for f32/bf16 tensors (HF's float32 rotary path), double for the
// f64 CPU path.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/ops/hd_math.h"

namespace attnlab {

// inv_freq[i] = 1 / θ^(2i/rot), i < rot/2, evaluated the way HF's default rotary init does it
// (`1.0 / (base ** (arange(0, dim, 2).float() / dim))`): the exponent is a float32 quotient and
// the power and reciprocal are float32 too when A = float. HF builds this buffer on the host
// once; we do the same and hand the table to the kernel, so the CPU f32 path and the GPU use the
// identical frequencies (an ulp of difference in inv_freq would move angles at position ~10⁴ by
// ~1e-3 rad). Host only.
template <class A>
void rope_inv_freq(double theta, int64_t rot, A* inv_freq) {
  for (int64_t i = 0; i < rot / 2; ++i) {
    const A exponent = A(2 * i) / A(rot);
    if constexpr (std::is_same_v<A, float>) inv_freq[i] = 1.0f / powf(float(theta), exponent);
    else inv_freq[i] = A(1) / std::pow(A(theta), exponent);
  }
}

// cos and sin of the angle pos·inv_freq; `inverse` negates the sine (the transpose rotation
// used by backward). The product is one rounding in A, as HF's float32 `inv_freq @ position_ids`.
template <class A>
ATTNLAB_HD void rope_cos_sin(int64_t pos, A inv_freq, bool inverse, A* c, A* s) {
  const A angle = A(pos) * inv_freq;
  hd_sincos(angle, s, c);
  if (inverse) *s = -*s;
}

// One pair (x1, x2) rotated by the angle whose cos/sin are (c, s):
// y1 = x1·c − x2·s, y2 = x2·c + x1·s. For rotate-half, x1 = x[i] and x2 = x[i + rot/2]
// (x' = x⊙cos + rot(x)⊙sin with rot(x) = [−x₂, x₁]); for interleaved, x1 = x[2i], x2 = x[2i+1].
template <class A>
ATTNLAB_HD void rope_rotate(A x1, A x2, A c, A s, A* y1, A* y2) {
  *y1 = x1 * c - x2 * s;
  *y2 = x2 * c + x1 * s;
}

}  // namespace attnlab
