#pragma once
// Shared by every kernel file: dtype helpers, the CUDA dtype dispatch, launch geometry.
// Reductions are in cuda/reduce.cuh, vectorised access in cuda/vec_access.cuh.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

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

// Blocks for a grid-stride loop over `work` items: enough to fill each of an H100's 132 SMs
// `waves` times over, no more (extra blocks only add scheduling cost).
inline int64_t grid_for(int64_t work, int threads, int waves = 16) {
  return std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, threads), int64_t(132) * waves));
}

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

// Null for an undefined (absent or frozen) tensor, whatever dtype it was left with.
template <class T>
T* dptr_or_null(const Tensor& t) {
  return t.defined() ? dptr<T>(t) : nullptr;
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

}  // namespace attnlab::cuda
