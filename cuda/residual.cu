#include "core/ops/residual.h"
#include "cuda/common.cuh"

namespace attnlab::cuda {

namespace {
template <class T>
__global__ void add_kernel(T* __restrict__ out, const T* __restrict__ a, const T* __restrict__ b,
                           int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

template <class T>
void launch_add(Ctx& ctx, T* out, const T* a, const T* b, int64_t n) {
  if (n == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>(ceil_div(n, threads), 132 * 16);
  add_kernel<T><<<blocks, threads, 0, stream_of(ctx)>>>(out, a, b, n);
  CUDA_CHECK_LAUNCH();
}
}  // namespace

void residual_forward(Ctx& ctx, const ResidualArgs& a) {
  dispatch_cuda_float(a.out.dtype, "residual_forward", [&](auto t) {
    using T = decltype(t);
    launch_add(ctx, dptr<T>(a.out), dptr<T>(a.a), dptr<T>(a.b), a.out.numel());
  });
}

void residual_backward(Ctx& ctx, const ResidualBackwardArgs& a) {
  dispatch_cuda_float(a.dout.dtype, "residual_backward", [&](auto t) {
    using T = decltype(t);
    for (const Tensor* d : {&a.da, &a.db})
      if (d->defined()) launch_add(ctx, dptr<T>(*d), dptr<T>(*d), dptr<T>(a.dout), a.dout.numel());
  });
}

}  // namespace attnlab::cuda
