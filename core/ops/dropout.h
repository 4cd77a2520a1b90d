#pragma once
// Inverted dropout: y = x · mask / (1 − p). The mask is never stored: element i keeps iff
// philox_uniform(ctx.seed, rng_offset, i) >= p (core/rng.h, core/ops/dropout_math.h), so backward
// regenerates it from the same seed and offset, and the CPU and the GPU drop the same elements.
// The caller reserves the counters with `rng_offset = ctx.take_rng(x.numel())` before forward and
// keeps the offset for backward. p = 0 is the identity; p must lie in [0, 1).
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

struct DropoutArgs {
  Tensor y;                 // [n] out (any shape), x's dtype; may be the same storage as x
  Tensor x;                 // [n] in
  double p = 0.0;           // drop probability in [0, 1)
  uint64_t rng_offset = 0;  // first Philox counter, from ctx.take_rng(n)
};

struct DropoutBackwardArgs {
  Tensor dx;                // [n] out (overwritten), dy's dtype; may be the same storage as dy
  Tensor dy;                // [n] in
  double p = 0.0;           // as in forward
  uint64_t rng_offset = 0;  // as in forward (and the same ctx.seed)
};

void dropout_forward(Ctx& ctx, const DropoutArgs& a);
void dropout_backward(Ctx& ctx, const DropoutBackwardArgs& a);

namespace cuda {
// The mask applies the same way in both directions: out = in · mask / (1 − p).
void dropout_apply(Ctx& ctx, const Tensor& out, const Tensor& in, double p, uint64_t rng_offset);
}  // namespace cuda

}  // namespace attnlab
