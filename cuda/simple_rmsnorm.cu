#include "core/cuda_check.h"
#include "core/ops/simple_rmsnorm.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"
#include "cuda/row_norm.cuh"

// SimpleRMSNorm (METHODS §3.5). Forward: one block of 256 threads per row. Backward: the row
// norms' kernel (cuda/row_norm.cuh, Kind::simple_rms) computes dx and folds ds per block into the
// caller's scratch, then a fixed-order pass sums the partials (deterministic, no atomics); one
// thread per column walking every row was 15 GB/s at 16352×512 on an H100.
namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void simple_rmsnorm_fwd_kernel(T* __restrict__ y, float* __restrict__ den, const T* __restrict__ x,
                                          const T* __restrict__ w, int64_t rows, int64_t C, float eps) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  if (r >= rows) return;
  const T* xr = x + r * C;
  float sq = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = to_f(xr[c]);
    sq += v * v;
  }
  sq = block_sum(sq, shared);
  const float d = sqrtf(sq) / sqrtf(float(C)) + eps;
  if (threadIdx.x == 0) den[r] = d;
  T* yr = y + r * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = from_f<T>(to_f(w[c]) * to_f(xr[c]) / d);
}

}  // namespace

void simple_rmsnorm_forward(Ctx& ctx, const SimpleRmsNormArgs& a) {
  dispatch_cuda_float(a.x.dtype, "simple_rmsnorm_forward", [&](auto t) {
    using T = decltype(t);
    const int64_t C = a.x.dim(-1), rows = a.x.numel() / C;
    CHECK(rows <= int64_t(0x7fffffff), "simple_rmsnorm_forward: ", rows, " rows exceed the grid limit");
    simple_rmsnorm_fwd_kernel<T><<<unsigned(rows), kThreads, 0, stream_of(ctx)>>>(
        dptr<T>(a.y), dptr<float>(a.den), dptr<T>(a.x), dptr<T>(a.weight), rows, C, float(a.eps));
    CUDA_CHECK_LAUNCH();
  });
}

void simple_rmsnorm_backward(Ctx& ctx, const SimpleRmsNormBackwardArgs& a) {
  dispatch_cuda_float(a.x.dtype, "simple_rmsnorm_backward", [&](auto t) {
    using T = decltype(t);
    const int64_t C = a.x.dim(-1), rows = a.x.numel() / C;
    rownorm::backward<T, rownorm::Kind::simple_rms>(
        ctx, dptr_or_null<T>(a.dx), dptr_or_null<float>(a.dweight), nullptr, dptr_or_null<float>(a.scratch),
        a.scratch.defined() ? size_t(a.scratch.numel()) : 0, dptr<T>(a.dy), dptr<T>(a.x), dptr<T>(a.weight), nullptr,
        dptr<float>(a.den), rows, C, a.accumulate_dx, float(a.eps));
  });
}

size_t simple_rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  return dispatch_cuda_float(dt, "simple_rmsnorm_backward_scratch_floats", [&](auto t) {
    return rownorm::backward_scratch_floats<decltype(t), rownorm::Kind::simple_rms>(ctx, rows, C);
  });
}

}  // namespace attnlab::cuda
