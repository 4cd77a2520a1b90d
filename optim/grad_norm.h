#pragma once
// Global gradient L2 norm over a list of gradient tensors, with the clip scale and a NaN/Inf
// flag from the same pass (METHODS P12 clipping: g ← g·min(1, max_norm/(‖g‖₂ + 1e-6))).
//
// Everything stays on the device: the norm, the clip scale AdamW consumes as its grad_scale,
// and the flag AdamW consumes as its skip input, so a step needs no host sync; the host reads
// the norm only when it logs.
//
// On CUDA the sum of squares is accumulated in double by a fixed-order two-stage reduction
// (per-block partial sums over a fixed grid, then one block over the partials; no atomics), so
// the same gradients give the same bits on every run. Since the squares are summed in double,
// the sum is not finite exactly when some element is NaN or ±Inf (f32 squares cannot overflow
// a double), which is the flag. The stage-1 partials use ctx.workspace as stream-ordered scratch.
#include <math.h>

#include "core/ctx.h"
#include "core/hd.h"
#include "optim/param_table.h"

namespace attnlab {

struct GradNormArgs {
  Tensor norm;        // [1] out, the table's dtype (f32; f64 on the CPU double path): ‖g‖₂
  Tensor clip_scale;  // [1] out, optional, same dtype: min(1, max_norm/(‖g‖₂ + 1e-6)); 1 when max_norm <= 0
  Tensor nonfinite;   // [1] i32 out, optional: 1 when any gradient element is NaN or ±Inf, else 0
  double max_norm = 0.0;
  Tensor sumsq;       // [1] f64 out, optional: Σ g² unrounded (ZeRO-1 sums it across ranks, so the
                      // global norm has the same bits as one rank's norm over the whole arena)
};

// The clip scale from the norm (NaN stays NaN, as in PyTorch; Inf gives 0).
ATTNLAB_HD double grad_clip_scale(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  if (norm != norm) return norm;
  const double s = max_norm / (norm + 1e-6);
  return s < 1.0 ? s : 1.0;
}

// Reads the `grad` of every slot (param/m/v may be undefined).
void grad_norm(Ctx& ctx, const ParamTable& grads, const GradNormArgs& a);

namespace cuda {
void grad_norm(Ctx& ctx, const ParamTable& grads, const GradNormArgs& a);
}  // namespace cuda

}  // namespace attnlab
