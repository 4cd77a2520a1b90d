#pragma once
// λ of differential attention evaluated on the device from its parameters, and the backward of
// that re-parameterisation (METHODS §3.2 step 5, §3.3), so the layer's step never synchronises
// with the host:
//   paper: λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init        λq1, λk1, λq2, λk2 [d]; λ [1]
//          dλq1 += dλ·e1·λk1, dλk1 += dλ·e1·λq1, dλq2 −= dλ·e2·λk2, dλk2 −= dλ·e2·λq2
//          (e1 = exp(λq1·λk1), e2 = exp(λq2·λk2))
//   seed:  λ_h = exp(λ'_h) + 0.05                            λ' [H]; λ [H]
//          dλ'_h += dλ_h·exp(λ'_h)
// Parameters are in the model dtype; λ, dλ and the parameter gradients in its accumulation dtype
// (f32 for f32/bf16, f64 for f64). Backward adds into the gradients; an undefined gradient (a
// frozen parameter) is skipped.
//
// Precision: the CPU evaluates in double whatever the dtype and rounds once on store (the values
// the layer's former host evaluation gave, bit for bit); CUDA evaluates in f32, the dot products
// with the butterfly block_sum of cuda/reduce.cuh (one block, a fixed order: the same bits run to
// run, forward and backward agreeing on e1 and e2).
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

enum class DiffLambdaPreset : uint8_t { paper, seed };

// λ_h = exp(λ'_h) + kDiffLambdaSeedOffset (METHODS §3.3).
inline constexpr double kDiffLambdaSeedOffset = 0.05;

struct DiffLambdaArgs {
  Tensor lambda;  // written: paper [1], seed [H]; accumulation dtype
  DiffLambdaPreset preset = DiffLambdaPreset::paper;
  Tensor q1, k1, q2, k2;   // paper: [d] each, model dtype; undefined for seed
  Tensor raw;              // seed: λ' [H], model dtype; undefined for paper
  double lambda_init = 0;  // paper: λ_init(l) (core/layers/differential_attention.h)
};

struct DiffLambdaBackwardArgs {
  Tensor dq1, dk1, dq2, dk2;  // paper: [d], accumulation dtype, += ; undefined: skipped
  Tensor draw;                // seed: [H], accumulation dtype, += ; undefined: skipped
  Tensor dlambda;             // paper [1], seed [H]; accumulation dtype
  DiffLambdaPreset preset = DiffLambdaPreset::paper;
  Tensor q1, k1, q2, k2;  // the forward's parameters
  Tensor raw;
};

void diff_lambda_forward(Ctx& ctx, const DiffLambdaArgs& a);
void diff_lambda_backward(Ctx& ctx, const DiffLambdaBackwardArgs& a);

namespace cuda {
void diff_lambda_forward(Ctx& ctx, const DiffLambdaArgs& a);
void diff_lambda_backward(Ctx& ctx, const DiffLambdaBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
