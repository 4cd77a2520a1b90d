#pragma once
// Residual add: out = a + b. Backward accumulates dout into da and db (the residual stream is
// the one place where activation gradients accumulate rather than overwrite).
#include "core/ctx.h"

namespace attnlab {

struct ResidualArgs {
  Tensor out;  // [n] any shape, same dtype as a and b
  Tensor a;    // [n]
  Tensor b;    // [n]
};
struct ResidualBackwardArgs {
  Tensor dout;  // [n]
  Tensor da;    // [n] accumulated (+=); may be undefined
  Tensor db;    // [n] accumulated (+=); may be undefined
};

void residual_forward(Ctx& ctx, const ResidualArgs& a);
void residual_backward(Ctx& ctx, const ResidualBackwardArgs& a);

namespace cuda {
void residual_forward(Ctx& ctx, const ResidualArgs& a);
void residual_backward(Ctx& ctx, const ResidualBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
