#include "core/ops/layernorm.h"
#include "cuda/row_norm.cuh"

// Kernels live in cuda/row_norm.cuh (shared with RMSNorm); this file binds LayerNorm's arguments.
namespace attnlab::cuda {

void layernorm_forward(Ctx& ctx, const LayerNormArgs& a) {
  dispatch_cuda_float(a.x.dtype, "layernorm_forward", [&](auto t) {
    using T = decltype(t);
    const int64_t C = a.x.dim(-1), rows = a.x.numel() / C;
    rownorm::forward<T, rownorm::Kind::layer>(ctx, dptr<T>(a.y), dptr<float>(a.mean), dptr<float>(a.rstd), dptr<T>(a.x),
                                              dptr_or_null<T>(a.weight), dptr_or_null<T>(a.bias), rows, C,
                                              float(a.eps));
  });
}

void layernorm_backward(Ctx& ctx, const LayerNormBackwardArgs& a) {
  dispatch_cuda_float(a.x.dtype, "layernorm_backward", [&](auto t) {
    using T = decltype(t);
    const int64_t C = a.x.dim(-1), rows = a.x.numel() / C;
    float* scratch = dptr_or_null<float>(a.scratch);
    rownorm::backward<T, rownorm::Kind::layer>(
        ctx, dptr_or_null<T>(a.dx), dptr_or_null<float>(a.dweight), dptr_or_null<float>(a.dbias), scratch,
        a.scratch.defined() ? size_t(a.scratch.numel()) : 0, dptr<T>(a.dy), dptr<T>(a.x), dptr_or_null<T>(a.weight),
        dptr<float>(a.mean), dptr<float>(a.rstd), rows, C, a.accumulate_dx);
  });
}

size_t layernorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  return dispatch_cuda_float(dt, "layernorm_backward_scratch_floats", [&](auto t) {
    return rownorm::backward_scratch_floats<decltype(t), rownorm::Kind::layer>(ctx, rows, C);
  });
}

}  // namespace attnlab::cuda
