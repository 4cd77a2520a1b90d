#pragma once
// SimpleRMSNorm of the seed-002 DIFF model (METHODS §3.5), eps OUTSIDE the root:
//   ρ = ‖x‖₂/√C,  den = ρ + eps,  y = s ⊙ x / den                       (per row of C)
// Backward, with g = s ⊙ dy:
//   dx = g/den − (Σ_k g_k x_k)·x / (den²·C·ρ)       (ρ = 0: the second term is taken as 0)
//   ds += Σ_rows dy ⊙ x/den
// Saved: den per row (acc dtype). CPU: f32, f64; CUDA: f32, bf16 (fp32 arithmetic inside).
// The CUDA backward is the row norms' (cuda/row_norm.cuh): ds folded per block into `scratch`, then
// summed in a fixed order (bitwise reproducible, no atomics). CUDA backward: C ≤ kRowNormMaxC (8192).
#include <cstddef>

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
  // CUDA only, needed when dweight is defined: f32 with at least
  // simple_rmsnorm_backward_scratch_floats(ctx, dtype, rows, C) elements (per-block partial sums).
  Tensor scratch;
  double eps = 1e-8;  // as in forward (ρ = den − eps)
  bool accumulate_dx = false;
};

void simple_rmsnorm_forward(Ctx& ctx, const SimpleRmsNormArgs& a);
void simple_rmsnorm_backward(Ctx& ctx, const SimpleRmsNormBackwardArgs& a);
// f32 elements the backward needs in `scratch` on this context (0 on the CPU).
size_t simple_rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C);

namespace cuda {
void simple_rmsnorm_forward(Ctx& ctx, const SimpleRmsNormArgs& a);
void simple_rmsnorm_backward(Ctx& ctx, const SimpleRmsNormBackwardArgs& a);
size_t simple_rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C);
}  // namespace cuda

}  // namespace attnlab
