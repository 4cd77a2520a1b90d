#pragma once
// The output of a per-row score controller (METHODS §4.3): the controller's pre-activation
// z = Linear(LayerNorm(x)) [B, T, H] (compute dtype) becomes the attention op's per-row input
// [B, H, T] (accumulation dtype), transposed on the way:
//   additive        a = tanh(z)          → AttentionArgs::score_add   (information density)
//   multiplicative  τ = exp(tanh(z))     → AttentionArgs::score_mul   (temperature, Sc·exp(a))
// Backward from the attention op's dscore_add / dscore_mul:
//   additive        dz = da·(1 − a²)
//   multiplicative  dz = dτ·τ·(1 − a²)
#include "core/ctx.h"

namespace attnlab {

enum class ControllerKind : uint8_t { additive, multiplicative };
const char* controller_kind_name(ControllerKind k);

struct ScoreControllerArgs {
  ControllerKind kind = ControllerKind::additive;
  Tensor z;    // in  T [B, T, H]
  Tensor out;  // out acc [B, H, T]
};

struct ScoreControllerBackwardArgs {
  ControllerKind kind = ControllerKind::additive;
  Tensor z;     // in  T [B, T, H] (the forward's input)
  Tensor dout;  // in  acc [B, H, T]
  Tensor dz;    // out T [B, T, H], overwritten
};

void score_controller_forward(Ctx& ctx, const ScoreControllerArgs& a);
void score_controller_backward(Ctx& ctx, const ScoreControllerBackwardArgs& a);

namespace cuda {
void score_controller_forward(Ctx& ctx, const ScoreControllerArgs& a);
void score_controller_backward(Ctx& ctx, const ScoreControllerBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
