#pragma once
// Shared by every kernel file: dtype helpers, the CUDA dtype dispatch, reductions.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/ctx.h"
#include "core/cuda_check.h"
#include "core/dtype.h"
#include "core/nvtx.h"

namespace attnlab {
template <> struct DTypeOf<__nv_bfloat16> { static constexpr DType value = DType::bf16; };
template <> struct AccOf<__nv_bfloat16> { using type = float; };
}  // namespace attnlab

namespace attnlab::cuda {

using bf16_t = __nv_bfloat16;

inline cudaStream_t stream_of(const Ctx& ctx) { return static_cast<cudaStream_t>(ctx.stream); }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T> __device__ __forceinline__ float to_f(T x) { return float(x); }
template <> __device__ __forceinline__ float to_f<bf16_t>(bf16_t x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f(float x) { return T(x); }
template <> __device__ __forceinline__ bf16_t from_f<bf16_t>(float x) { return __float2bfloat16(x); }

// Raw pointer of the CUDA element type for a tensor (bf16 tensors map to __nv_bfloat16).
template <class T>
T* dptr(const Tensor& t) {
  CHECK(dtype_of<T> == t.dtype, "tensor '", t.name, "' is ", dtype_name(t.dtype), ", kernel wants ",
        dtype_name(dtype_of<T>));
  CHECK(t.device == Device::cuda || t.data == nullptr, "tensor '", t.name, "' is not on the GPU");
  return static_cast<T*>(t.data);
}

// fp32 and bf16 run on CUDA.
template <class F>
decltype(auto) dispatch_cuda_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16_t{});
    default: FAIL_WITH(op, ": the CUDA backend runs f32 and bf16, got ", dtype_name(t));
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_min(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum for blockDim.x a multiple of 32 (<= 1024). `shared` holds >= 32 floats.
// Every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* shared) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace attnlab::cuda
