#include "core/ops/scale.h"
#include "core/ops/scale_math.h"
#include "cuda/common.cuh"

namespace attnlab::cuda {

namespace {

// Grid-stride over n elements; arithmetic in float for f32 and bf16 (scale_value<float>).
template <class T>
__global__ void scale_kernel(T* y, const T* x, float alpha, float beta, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_f<T>(scale_value<float>(to_f(x[i]), beta == 0.f ? 0.f : to_f(y[i]), alpha, beta));
}

}  // namespace

void scale(Ctx& ctx, const Tensor& y, const Tensor& x, double alpha, double beta) {
  const int64_t n = y.numel();
  if (n == 0) return;
  dispatch_cuda_float(y.dtype, "scale", [&](auto t) {
    using T = decltype(t);
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>(ceil_div(n, threads), 132 * 16);
    // The float path rounds the double scalars here, and only here.
    scale_kernel<T><<<blocks, threads, 0, stream_of(ctx)>>>(dptr<T>(y), dptr<T>(x), float(alpha), float(beta), n);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
