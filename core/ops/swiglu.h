#pragma once
// SwiGLU gating of the Qwen MLP (METHODS P7): h = silu(gate) ⊙ up, per row of I columns.
// gate and up come either as two tensors or as one fused [rows, 2I] tensor (what a single
// gate_up projection GEMM writes). Backward overwrites dgate and dup in the same layout.
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

enum class SwigluLayout : uint8_t {
  separate,  // gate [rows, I] and up [rows, I], two tensors
  fused,     // gate_up [rows, 2I]: row r = [gate_r (columns 0..I−1), up_r (columns I..2I−1)]
};

// Aliasing: h must not overlap gate/up/gate_up in the fused layout; in the separate layout
// h may be gate or up itself (elementwise). Backward gradients may be their own inputs
// (dgate == gate, dup == up, dgate_up == gate_up): each element is read before it is written.
struct SwigluArgs {
  Tensor h;        // [rows, I] written
  Tensor gate;     // separate: [rows, I] gate pre-activation a; undefined when fused
  Tensor up;       // separate: [rows, I] up projection u; undefined when fused
  Tensor gate_up;  // fused: [rows, 2I]; undefined when separate
  SwigluLayout layout = SwigluLayout::separate;
};
struct SwigluBackwardArgs {
  Tensor dgate;     // separate: [rows, I] written (overwrite)
  Tensor dup;       // separate: [rows, I] written (overwrite)
  Tensor dgate_up;  // fused: [rows, 2I] written (overwrite), same column split as gate_up
  Tensor dh;        // [rows, I] gradient of h
  Tensor gate;      // forward inputs, in `layout`
  Tensor up;
  Tensor gate_up;
  SwigluLayout layout = SwigluLayout::separate;
};

void swiglu_forward(Ctx& ctx, const SwigluArgs& a);
void swiglu_backward(Ctx& ctx, const SwigluBackwardArgs& a);

// Element pointers and row strides of gate and up, whichever the layout (in elements).
struct SwigluOperands {
  void* gate = nullptr;
  void* up = nullptr;
  int64_t stride = 0;  // distance between rows of gate (and of up): I or 2I
};
SwigluOperands swiglu_operands(SwigluLayout layout, const Tensor& gate, const Tensor& up,
                               const Tensor& gate_up, int64_t cols);

namespace cuda {
void swiglu_forward(Ctx& ctx, const SwigluArgs& a);
void swiglu_backward(Ctx& ctx, const SwigluBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
