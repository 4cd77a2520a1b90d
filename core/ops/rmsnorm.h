#pragma once
// RMSNorm, HF Qwen style (METHODS P2): per row of C elements, r = (mean_k x_k² + eps)^(-1/2),
// x̂ = x·r computed in fp32 and rounded to x's dtype, y = w ⊙ x̂. Forward saves r (rstd, acc dtype).
// Backward with g = w ⊙ dy: dx = r·g − x·r³·(1/C)·Σ_k g_k x_k, dw += Σ_rows dy ⊙ x̂.
//
// Per-head use (Qwen3 q_norm / k_norm): pass q as [B·T·Hq, d] (any leading dims work: C is the
// last dim) with the [d] weight shared by every head and position. Millions of short rows are
// the case the CUDA backward is laid out for: a few row groups per warp, dw folded privately per
// block over thousands of rows, then one deterministic pass over the per-block partials (see
// cuda/row_norm.cuh; the same machinery as LayerNorm). CUDA: C ≤ kRowNormMaxC (8192).
#include <cstddef>

#include "core/ctx.h"
#include "core/ops/row_norm.h"

namespace attnlab {

struct RmsNormArgs {
  Tensor y;       // [rows, C] out (any leading dims; C = last dim), x's dtype
  Tensor rstd;    // [rows] out, acc dtype: r per row
  Tensor x;       // [rows, C] in
  Tensor weight;  // [C] in, x's dtype; undefined = no elementwise affine (w ≡ 1)
  double eps = 1e-6;
};

struct RmsNormBackwardArgs {
  Tensor dx;       // [rows, C] out, x's dtype: overwritten, or += when accumulate_dx; undefined = skip
  Tensor dweight;  // [C] acc dtype, accumulated (+=); undefined = w frozen (or absent)
  Tensor dy;       // [rows, C] in, x's dtype; must not alias dx
  Tensor x;        // [rows, C] in: forward input
  Tensor weight;   // [C] in: as given to forward
  Tensor rstd;     // [rows] in, acc dtype: from forward
  // CUDA only, needed when dweight is defined: f32 with at least
  // rmsnorm_backward_scratch_floats(ctx, dtype, rows, C) elements (per-block partial sums).
  Tensor scratch;
  bool accumulate_dx = false;
};

void rmsnorm_forward(Ctx& ctx, const RmsNormArgs& a);
void rmsnorm_backward(Ctx& ctx, const RmsNormBackwardArgs& a);
// f32 elements the backward needs in `scratch` on this context (0 on the CPU).
size_t rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C);

namespace cuda {
void rmsnorm_forward(Ctx& ctx, const RmsNormArgs& a);
void rmsnorm_backward(Ctx& ctx, const RmsNormBackwardArgs& a);
size_t rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C);
}  // namespace cuda

}  // namespace attnlab
