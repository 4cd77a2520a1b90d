#include "core/cuda_check.h"
#include "core/ops/simple_rmsnorm.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"

// SimpleRMSNorm (METHODS §3.5): one block of 256 threads per row for the forward and dx; dweight
// by one thread per column walking the rows in order (deterministic, coalesced across columns).
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

template <class T>
__global__ void simple_rmsnorm_dx_kernel(T* __restrict__ dx, const T* __restrict__ dy, const T* __restrict__ x,
                                         const T* __restrict__ w, const float* __restrict__ den, int64_t rows,
                                         int64_t C, float eps, bool accumulate) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  if (r >= rows) return;
  const T *xr = x + r * C, *gr = dy + r * C;
  float sum_gx = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum_gx += to_f(w[c]) * to_f(gr[c]) * to_f(xr[c]);
  sum_gx = block_sum(sum_gx, shared);
  const float d = den[r], rho = d - eps;
  const float k = rho > 0.f ? sum_gx / (d * d * float(C) * rho) : 0.f;
  T* dxr = dx + r * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = to_f(w[c]) * to_f(gr[c]) / d - k * to_f(xr[c]);
    dxr[c] = from_f<T>(accumulate ? to_f(dxr[c]) + v : v);
  }
}

template <class T>
__global__ void simple_rmsnorm_dw_kernel(float* __restrict__ dw, const T* __restrict__ dy, const T* __restrict__ x,
                                         const float* __restrict__ den, int64_t rows, int64_t C) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.f;
  for (int64_t r = 0; r < rows; ++r) acc += to_f(dy[r * C + c]) * to_f(x[r * C + c]) / den[r];
  dw[c] += acc;
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
    CHECK(rows <= int64_t(0x7fffffff), "simple_rmsnorm_backward: ", rows, " rows exceed the grid limit");
    if (a.dx.defined()) {
      simple_rmsnorm_dx_kernel<T><<<unsigned(rows), kThreads, 0, stream_of(ctx)>>>(
          dptr<T>(a.dx), dptr<T>(a.dy), dptr<T>(a.x), dptr<T>(a.weight), dptr<float>(a.den), rows, C, float(a.eps),
          a.accumulate_dx);
      CUDA_CHECK_LAUNCH();
    }
    if (a.dweight.defined()) {
      simple_rmsnorm_dw_kernel<T><<<unsigned(ceil_div(C, kThreads)), kThreads, 0, stream_of(ctx)>>>(
          dptr<float>(a.dweight), dptr<T>(a.dy), dptr<T>(a.x), dptr<float>(a.den), rows, C);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace attnlab::cuda
