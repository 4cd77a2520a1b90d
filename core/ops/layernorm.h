#pragma once
// LayerNorm over the last dimension (METHODS P3): per row of C elements,
// μ = mean(x), σ = sqrt(var_biased(x) + eps), x̂ = (x − μ)/σ, y = γ ⊙ x̂ + β.
// Forward saves μ and rstd = 1/σ (acc dtype) as explicit outputs; backward takes them back.
//
// Backward, with g = γ ⊙ dy: dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)), dγ += Σ_rows dy ⊙ x̂,
// dβ += Σ_rows dy. dx overwrites, or adds when `accumulate_dx` (LayerNorm input = residual stream).
//
// CUDA: C ≤ kRowNormMaxC (8192). Backward is deterministic: no float atomics. Each block folds
// dγ/dβ of the rows it handles in registers, writes one partial row per block into `scratch`,
// and a second kernel sums the partials column by column in a fixed order. Ask
// layernorm_backward_scratch_floats() for the scratch size (it depends on the GPU's SM count).
#include <cstddef>

#include "core/ctx.h"
#include "core/ops/row_norm.h"

namespace attnlab {

struct LayerNormArgs {
  Tensor y;       // [rows, C] out (any leading dims; C = last dim), x's dtype
  Tensor mean;    // [rows] out, acc dtype: μ per row
  Tensor rstd;    // [rows] out, acc dtype: 1/σ per row
  Tensor x;       // [rows, C] in
  Tensor weight;  // [C] in, x's dtype; undefined = γ ≡ 1
  Tensor bias;    // [C] in, x's dtype; undefined = β ≡ 0
  double eps = 1e-5;
};

struct LayerNormBackwardArgs {
  Tensor dx;       // [rows, C] out, x's dtype: overwritten, or += when accumulate_dx; undefined = skip
  Tensor dweight;  // [C] acc dtype, accumulated (+=); undefined = γ frozen (or absent)
  Tensor dbias;    // [C] acc dtype, accumulated (+=); undefined = β frozen (or absent)
  Tensor dy;       // [rows, C] in, x's dtype; must not alias dx
  Tensor x;        // [rows, C] in: forward input
  Tensor weight;   // [C] in: as given to forward (undefined = γ ≡ 1)
  Tensor mean;     // [rows] in, acc dtype: from forward
  Tensor rstd;     // [rows] in, acc dtype: from forward
  // CUDA only, needed when dweight or dbias is defined: f32 with at least
  // layernorm_backward_scratch_floats(ctx, dtype, rows, C) elements (per-block partial sums).
  Tensor scratch;
  bool accumulate_dx = false;
};

void layernorm_forward(Ctx& ctx, const LayerNormArgs& a);
void layernorm_backward(Ctx& ctx, const LayerNormBackwardArgs& a);
// f32 elements the backward needs in `scratch` on this context (0 on the CPU).
size_t layernorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C);

namespace cuda {
void layernorm_forward(Ctx& ctx, const LayerNormArgs& a);
void layernorm_backward(Ctx& ctx, const LayerNormBackwardArgs& a);
size_t layernorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C);
}  // namespace cuda

}  // namespace attnlab
