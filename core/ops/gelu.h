#pragma once
// GELU activation, exact (erf) or the tanh approximation (METHODS P8). Elementwise over any
// shape. Backward overwrites dx = dy · gelu'(x).
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

enum class GeluKind : uint8_t {
  erf_exact,    // x·Φ(x): Qwen gates in the two-pass layer, PyTorch nn.GELU()
  tanh_approx,  // GPT-2 "gelu_new", PyTorch nn.GELU(approximate="tanh")
};
const char* gelu_kind_name(GeluKind k);

struct GeluArgs {
  Tensor out;  // [n] any shape, written; may be the same tensor as x (in place)
  Tensor x;    // [n] same dtype and element count as out
  GeluKind kind = GeluKind::erf_exact;
};
struct GeluBackwardArgs {
  Tensor dx;  // [n] written (overwrite); may be the same tensor as dy
  Tensor dy;  // [n] gradient of out
  Tensor x;   // [n] the forward input
  GeluKind kind = GeluKind::erf_exact;
};

void gelu_forward(Ctx& ctx, const GeluArgs& a);
void gelu_backward(Ctx& ctx, const GeluBackwardArgs& a);

namespace cuda {
void gelu_forward(Ctx& ctx, const GeluArgs& a);
void gelu_backward(Ctx& ctx, const GeluBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
