#pragma once
// SimpleRMSNorm of the seed-002 DIFF model (METHODS §3.5), eps OUTSIDE the root:
//   ρ = ‖x‖₂/√C,  den = ρ + eps,  y = s ⊙ x / den                       (per row of C)
// Backward, with g = s ⊙ dy:
//   dx = g/den − (Σ_k g_k x_k)·x / (den²·C·ρ)       (ρ = 0: the second term is taken as 0)
//   ds += Σ_rows dy ⊙ x/den
// Saved: den per row (acc dtype). CPU: f32, f64; CUDA: f32, bf16 (fp32 arithmetic inside).
#include "core/ctx.h"

namespace attnlab {

struct SimpleRmsNormArgs {
  Tensor y;       // [rows, C] out (any leading dims), x's dtype
  Tensor den;     // [rows] out, acc dtype: ρ + eps
  Tensor x;       // [rows, C] in
  Tensor weight;  // [C] in, x's dtype (s)
  double eps = 1e-8;
};

struct SimpleRmsNormBackwardArgs {
  Tensor dx;       // [rows, C] out, x's dtype: overwritten, or += when accumulate_dx; undefined = skip
  Tensor dweight;  // [C] acc dtype, accumulated (+=); undefined = frozen
  Tensor dy;       // [rows, C] in; must not alias dx
  Tensor x;        // [rows, C] in: forward input
  Tensor weight;   // [C] in
  Tensor den;      // [rows] in: from forward
  double eps = 1e-8;  // as in forward (ρ = den − eps)
  bool accumulate_dx = false;
};

void simple_rmsnorm_forward(Ctx& ctx, const SimpleRmsNormArgs& a);
void simple_rmsnorm_backward(Ctx& ctx, const SimpleRmsNormBackwardArgs& a);

namespace cuda {
void simple_rmsnorm_forward(Ctx& ctx, const SimpleRmsNormArgs& a);
void simple_rmsnorm_backward(Ctx& ctx, const SimpleRmsNormBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
