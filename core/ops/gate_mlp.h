#pragma once
// The three uncertainty gates of the two-pass attention layer (METHODS §1.3 step 8-9, §1.4),
// q, k and v in one call. Per token (row) r and gate g ∈ {q, k, v}:
//   a1_g = [x_r, u_r] A1_gᵀ + c1_g          fc1: Linear(D+1 → 16)        [16]
//   a2_g = gelu_erf(a1_g)                                                   [16]
//   a3_g = a2_g A2_gᵀ + c2_g                fc2: Linear(16 → D)          [D]
//   adj_g = 0.2·tanh(a3_g)                  each multiplier 1 + adj in (0.8, 1.2)
//   y_g  = x_r ⊙ (1 + adj_g)                the gated input of projection g
// The concatenation [x, u] is never materialised: fc1's last weight column multiplies u.
//
// Saved for backward: a1 (the three fc1 pre-activations, 48 values per row). Backward recomputes
// a2, a3 and adj from it, so the gates keep no [rows, D] activation besides their outputs.
//
// Gradients (§1.4): dx (the direct path Σ_g dy_g ⊙ (1 + adj_g) plus the three fc1 input
// gradients without their u column) and every gate parameter (accumulated, +=). There is NO du:
// u comes from the draft attention and the lm_head entropy, which receive no gradient in the
// original (they are consumed under no_grad), so the u column of dg is dropped, not produced.
//
// dtypes: T is x's dtype: f32/f64 on the CPU, f32/bf16 on CUDA. Gate parameters have dtype T
// (the trainer keeps fp32 masters); u, a1, adj_norm, parameter gradients and the backward scratch
// have acc dtype (f32 for f32/bf16, f64 for f64). Arithmetic runs in the acc dtype (fp32 on CUDA).
// x and the per-row tensors may carry leading dims ([B, T, D]): rows = numel / D.
//
// CUDA: fc1 (x·A1[:, :D]ᵀ) and the parameter/fc2 gradient products are cuBLASLt GEMMs (one per
// gate); the rest is four hand-written kernels that treat the three gates in one launch each
// (x is read once for q, k and v). The backward needs `scratch` (see below) because the GEMMs
// use ctx.workspace themselves.
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

inline constexpr int64_t kGateHidden = 16;  // fc1 width (the original's Linear(D+1, 16))
inline constexpr int kNumGates = 3;         // q, k, v, in this order in every array below
inline constexpr double kGateScale = 0.2;   // adj = 0.2·tanh(a3)

// One gate's parameters, PyTorch/HF storage ([out, in]); dtype T.
struct GateParams {
  Tensor fc1_w;  // [16, D+1]: columns 0..D−1 multiply x, column D multiplies u
  Tensor fc1_b;  // [16]
  Tensor fc2_w;  // [D, 16]
  Tensor fc2_b;  // [D]
};
// One gate's parameter gradients, same shapes, acc dtype, accumulated (+=). Each undefined
// tensor is skipped (frozen): no GEMM is run for it. All four undefined: the gate is frozen.
struct GateGrads {
  Tensor fc1_w, fc1_b, fc2_w, fc2_b;
};

struct GateMlpArgs {
  Tensor x;                     // [rows, D] in, T: the attention input (input_layernorm output)
  Tensor u;                     // [rows] in, acc dtype: gathered uncertainty (P̄ @ e), no gradient
  GateParams gate[kNumGates];   // in, T
  Tensor y[kNumGates];          // [rows, D] out, T: x ⊙ (1 + adj_g); must not overlap x
  Tensor a1;                    // [rows, 3, 16] out, acc dtype: fc1 pre-activations, saved for backward
  // Optional [rows, 3] out, acc dtype: ‖adj_g‖₂ per row and gate (the gate-influence analysis
  // of §1.8 averages the three: m_t = Σ_g ‖adj_g‖ / 3). Undefined: not computed (no cost).
  Tensor adj_norm;
};

struct GateMlpBackwardArgs {
  Tensor x;                     // [rows, D] in, T (forward input)
  Tensor u;                     // [rows] in, acc dtype (forward input)
  GateParams gate[kNumGates];   // in, T
  Tensor a1;                    // [rows, 3, 16] in, acc dtype: saved by forward
  Tensor dy[kNumGates];         // [rows, D] in, T: gradients of y_g (the projections' dx)
  Tensor dx;                    // [rows, D] out, T: overwritten, or += when accumulate_dx
  GateGrads grad[kNumGates];    // accumulated (+=), acc dtype; undefined: frozen
  // [rows, D] out, T, one per gate: da3_g = dy_g ⊙ x ⊙ 0.2(1 − tanh²(a3_g)), the fc2
  // pre-activation gradient (scratch for the caller; its value is defined). May be the very
  // storage of dy[g] (in place: every element is read before it is written, by the same thread).
  Tensor da3[kNumGates];
  // [rows, 96] acc dtype, scratch: contents undefined on return. Must not overlap anything else.
  Tensor scratch;
  bool accumulate_dx = false;
};

void gate_mlp_forward(Ctx& ctx, const GateMlpArgs& a);
void gate_mlp_backward(Ctx& ctx, const GateMlpBackwardArgs& a);

// Columns of the backward scratch per row (the [rows, 96] above).
inline constexpr int64_t kGateScratchCols = 2 * kNumGates * kGateHidden;

// Rows and D of a call, after the shape checks shared by forward, backward and the kernels.
struct GateMlpSizes {
  int64_t rows = 0, dim = 0;
};

namespace cuda {
// Expect validated arguments (the dispatchers check shapes, dtypes and devices).
void gate_mlp_forward(Ctx& ctx, const GateMlpArgs& a, GateMlpSizes s);
void gate_mlp_backward(Ctx& ctx, const GateMlpBackwardArgs& a, GateMlpSizes s);
}  // namespace cuda

}  // namespace attnlab
