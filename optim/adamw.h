#pragma once
// AdamW with PyTorch semantics (METHODS P12): decoupled weight decay θ ← θ·(1 − lr·wd), moments
// m, v, bias correction with the step count t, eps outside the square root.
//
// Per parameter tensor (ParamSlot): fp32 master weights, fp32 m and v, fp32 gradient (f64
// everything on the CPU double path), an optional bf16 working copy rewritten from the updated
// master, and a decay flag. Two device scalars make the step free of host syncs:
//  - grad_scale: every gradient is multiplied by it before use; grad_norm() writes the clip
//    scale min(1, max_norm/(‖g‖+1e-6)) there, so clipping costs no pass over the gradients;
//  - skip: when it holds a non-zero value (grad_norm()'s NaN/Inf flag), the step changes nothing,
//    so a bad batch is dropped without the host looking at the flag first.
#include "core/ctx.h"
#include "optim/adamw_math.h"
#include "optim/param_table.h"

namespace attnlab {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to slots whose `decay` flag is set
  int64_t step = 1;           // t, 1-based, counted by the caller (bias correction 1 − β^t)
};

struct AdamWArgs {
  AdamWHyper hyper;
  Tensor grad_scale;  // [1] in, optional, the params' dtype on their device: g ← g·grad_scale
  Tensor skip;        // [1] i32 in, optional: non-zero → this call updates nothing
};

// The per-step constants of `h` in dtype A (what the kernel and the CPU loop use).
template <class A>
AdamWCoef<A> adamw_coef(const AdamWHyper& h);

// One tensor.
void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamSlot& slot);
// Every slot of the table in one launch on CUDA (the table must have optimizer state: param,
// m and v in every slot). Equal, bit for bit, to calling the one-tensor form on each slot.
void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamTable& table);

namespace cuda {
void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamSlot& slot);
void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamTable& table);
}  // namespace cuda

}  // namespace attnlab
