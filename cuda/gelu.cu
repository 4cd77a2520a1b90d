#include "core/ops/gelu.h"
#include "core/ops/gelu_math.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

template <GeluKind K>
__device__ __forceinline__ float gelu_value(float x) {
  if constexpr (K == GeluKind::erf_exact) return gelu_erf<float>(x);
  else return gelu_tanh<float>(x);
}
template <GeluKind K>
__device__ __forceinline__ float gelu_grad(float x) {
  if constexpr (K == GeluKind::erf_exact) return gelu_erf_grad<float>(x);
  else return gelu_tanh_grad<float>(x);
}

// The first n / N packs move as 16-byte accesses; the last n % N elements (the scalar tail)
// go to the first few threads. N = 1 is the path for unaligned pointers. No __restrict__:
// out may be x (in place), each element is read before its own write by the same thread.
template <class T, int N, GeluKind K>
__global__ void gelu_forward_kernel(T* out, const T* x, int64_t n) {
  const int64_t packs = n / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (int64_t p = tid; p < packs; p += stride) {
    Pack<T, N> v = load_pack<N>(x + p * N);
#pragma unroll
    for (int k = 0; k < N; ++k) v.v[k] = from_f<T>(gelu_value<K>(to_f(v.v[k])));
    store_pack<N>(out + p * N, v);
  }
  const int64_t i = packs * N + tid;
  if (i < n) out[i] = from_f<T>(gelu_value<K>(to_f(x[i])));
}

template <class T, int N, GeluKind K>
__global__ void gelu_backward_kernel(T* dx, const T* dy, const T* x, int64_t n) {
  const int64_t packs = n / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (int64_t p = tid; p < packs; p += stride) {
    Pack<T, N> g = load_pack<N>(dy + p * N);
    const Pack<T, N> v = load_pack<N>(x + p * N);
#pragma unroll
    for (int k = 0; k < N; ++k) g.v[k] = from_f<T>(to_f(g.v[k]) * gelu_grad<K>(to_f(v.v[k])));
    store_pack<N>(dx + p * N, g);
  }
  const int64_t i = packs * N + tid;
  if (i < n) dx[i] = from_f<T>(to_f(dy[i]) * gelu_grad<K>(to_f(x[i])));
}

constexpr int kThreads = 256;

// Calls f(std::integral_constant<GeluKind, K>) for the runtime kind.
template <class F>
void with_kind(GeluKind kind, F&& f) {
  if (kind == GeluKind::erf_exact) f(std::integral_constant<GeluKind, GeluKind::erf_exact>{});
  else f(std::integral_constant<GeluKind, GeluKind::tanh_approx>{});
}

}  // namespace

void gelu_forward(Ctx& ctx, const GeluArgs& a) {
  const int64_t n = a.out.numel();
  if (n == 0) return;
  dispatch_cuda_float(a.out.dtype, "gelu_forward", [&](auto tag) {
    using T = decltype(tag);
    T* out = dptr<T>(a.out);
    const T* x = dptr<T>(a.x);
    constexpr int V = kVec16<T>;
    const bool vec = is_aligned16(out) && is_aligned16(x);
    with_kind(a.kind, [&](auto k) {
      constexpr GeluKind K = decltype(k)::value;
      if (vec) {
        gelu_forward_kernel<T, V, K><<<grid_for(n / V + 1, kThreads), kThreads, 0, stream_of(ctx)>>>(out, x, n);
      } else {
        gelu_forward_kernel<T, 1, K><<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(out, x, n);
      }
      CUDA_CHECK_LAUNCH();
    });
  });
}

void gelu_backward(Ctx& ctx, const GeluBackwardArgs& a) {
  const int64_t n = a.dx.numel();
  if (n == 0) return;
  dispatch_cuda_float(a.dx.dtype, "gelu_backward", [&](auto tag) {
    using T = decltype(tag);
    T* dx = dptr<T>(a.dx);
    const T *dy = dptr<T>(a.dy), *x = dptr<T>(a.x);
    constexpr int V = kVec16<T>;
    const bool vec = is_aligned16(dx) && is_aligned16(dy) && is_aligned16(x);
    with_kind(a.kind, [&](auto k) {
      constexpr GeluKind K = decltype(k)::value;
      if (vec) {
        gelu_backward_kernel<T, V, K><<<grid_for(n / V + 1, kThreads), kThreads, 0, stream_of(ctx)>>>(dx, dy, x, n);
      } else {
        gelu_backward_kernel<T, 1, K><<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(dx, dy, x, n);
      }
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace attnlab::cuda
