#include "core/ops/rmsnorm.h"
#include "cuda/row_norm.cuh"

// Kernels live in cuda/row_norm.cuh (shared with LayerNorm); this file binds RMSNorm's arguments.
namespace attnlab::cuda {

void rmsnorm_forward(Ctx& ctx, const RmsNormArgs& a) {
  dispatch_cuda_float(a.x.dtype, "rmsnorm_forward", [&](auto t) {
    using T = decltype(t);
    const int64_t C = a.x.dim(-1), rows = a.x.numel() / C;
    rownorm::forward<T, rownorm::Kind::rms>(ctx, dptr<T>(a.y), nullptr, dptr<float>(a.rstd), dptr<T>(a.x),
                                            dptr_or_null<T>(a.weight), nullptr, rows, C, float(a.eps));
  });
}

void rmsnorm_backward(Ctx& ctx, const RmsNormBackwardArgs& a) {
  dispatch_cuda_float(a.x.dtype, "rmsnorm_backward", [&](auto t) {
    using T = decltype(t);
    const int64_t C = a.x.dim(-1), rows = a.x.numel() / C;
    rownorm::backward<T, rownorm::Kind::rms>(
        ctx, dptr_or_null<T>(a.dx), dptr_or_null<float>(a.dweight), nullptr, dptr_or_null<float>(a.scratch),
        a.scratch.defined() ? size_t(a.scratch.numel()) : 0, dptr<T>(a.dy), dptr<T>(a.x), dptr_or_null<T>(a.weight),
        nullptr, dptr<float>(a.rstd), rows, C, a.accumulate_dx);
  });
}

size_t rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  return dispatch_cuda_float(dt, "rmsnorm_backward_scratch_floats", [&](auto t) {
    return rownorm::backward_scratch_floats<decltype(t), rownorm::Kind::rms>(ctx, rows, C);
  });
}

}  // namespace attnlab::cuda
