#pragma once
// Swap of dims 1 and 2 of a 4-D tensor, rows of the last dim moved whole:
// out[b, j, i, :] = in[b, i, j, :]. With in = [B, T, H, d] this is [B, T, H, d] → [B, H, T, d]
// (V into attention); with in = [B, H, T, d] it is the inverse (the attention output back to
// tokens-major). The swap is its own inverse, so backward is the same swap of the gradient.
#include "core/ctx.h"

namespace attnlab {

struct PermuteArgs {
  Tensor out;  // [B, N2, N1, d] written; must not overlap in
  Tensor in;   // [B, N1, N2, d]
};
struct PermuteBackwardArgs {
  Tensor din;   // [B, N1, N2, d] written (overwrite); must not overlap dout
  Tensor dout;  // [B, N2, N1, d] gradient of out
};

void permute_forward(Ctx& ctx, const PermuteArgs& a);
void permute_backward(Ctx& ctx, const PermuteBackwardArgs& a);

namespace cuda {
// out[b, j, i, :] = in[b, i, j, :] with in [B, N1, N2, d]; forward and backward both call it.
void permute_swap12(Ctx& ctx, const Tensor& out, const Tensor& in);
}  // namespace cuda

}  // namespace attnlab
