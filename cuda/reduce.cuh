#pragma once
// Warp and block reductions of every CUDA kernel (float, double and integer values).
//
// Each reduction has a fixed tree set by blockDim alone and no atomics, so the same inputs give
// the same bits on every run. Two trees exist on purpose, because kernels whose results tests
// compare bit for bit were written against each and must keep it:
//   * butterfly (warp_reduce, block_reduce / block_sum / block_max): lanes exchange with
//     xor-shuffles 16, 8, 4, 2, 1; a block folds its warps' partials with one more butterfly over
//     32 slots (identity-padded). Used by the simple row kernels, loss means, gradient norms,
//     sampling and dλ.
//   * in order (block_allreduce_inorder, group_sum): a butterfly inside each warp, then the
//     warps' partials folded serially w = 0, 1, 2, ... . Used by the fused attention row kernels
//     and the LayerNorm/RMSNorm rows, N values at once (one barrier pair for all N).
// For integers (and max/min) the order cannot change the result; only float sums care.
#include <cuda_runtime.h>

#include <cstdint>

namespace attnlab::cuda {

// ---- combine operations ---------------------------------------------------------------------

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
// fmaxf/fminf for floating point (a NaN operand is dropped), max/min otherwise.
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return max(a, b); }
};
struct MinOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fminf(a, b); }
  __device__ __forceinline__ double operator()(double a, double b) const { return fmin(a, b); }
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return min(a, b); }
};

// ---- warp: butterfly, every lane gets the same bits ------------------------------------------

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// One instruction for 32-bit integer min (sm_80+); the same value as the shuffle tree.
__device__ __forceinline__ int warp_reduce(int v, MinOp) { return __reduce_min_sync(0xffffffffu, v); }

template <class T> __device__ __forceinline__ T warp_sum(T v) { return warp_reduce(v, SumOp{}); }
template <class T> __device__ __forceinline__ T warp_max(T v) { return warp_reduce(v, MaxOp{}); }
template <class T> __device__ __forceinline__ T warp_min(T v) { return warp_reduce(v, MinOp{}); }

// ---- block: butterfly over the warps' partials, every thread gets the result -----------------

// blockDim.x a multiple of 32 (<= 1024); `shared` holds one value per warp (32 always suffice).
// The leading barrier lets
// consecutive calls reuse `shared`. `identity` pads the slots of warps the block does not have.
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, T* shared, Op op, T identity) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : identity;
  return warp_reduce(v, op);
}
template <class T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  return block_reduce(v, shared, SumOp{}, T(0));
}
// float: −inf pads (a NaN is dropped, as fmaxf does); unsigned: 0 pads.
__device__ __forceinline__ float block_max(float v, float* shared) {
  return block_reduce(v, shared, MaxOp{}, -INFINITY);
}
__device__ __forceinline__ uint64_t block_max(uint64_t v, uint64_t* shared) {
  return block_reduce(v, shared, MaxOp{}, uint64_t(0));
}

// ---- block: in-order fold of the warps' partials, N values at once ----------------------------

// All-reduce of N values over the block (blockDim.x a multiple of 32); every thread gets them.
// `smem` holds 32·N values. The leading barrier lets consecutive calls reuse `smem`.
template <int N, class T, class Op>
__device__ __forceinline__ void block_allreduce_inorder(T (&v)[N], T* smem, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = warp_reduce(v[i], op);
  __syncthreads();
  if (lane == 0)
#pragma unroll
    for (int i = 0; i < N; ++i) smem[warp * N + i] = v[i];
  __syncthreads();
#pragma unroll
  for (int i = 0; i < N; ++i) {
    T acc = smem[i];
    for (int w = 1; w < nw; ++w) acc = op(acc, smem[w * N + i]);
    v[i] = acc;
  }
}

// Sums each v[i] over the `group` consecutive threads of the calling thread's group (the row
// group of the row-norm kernels); every thread of the group gets the same bits. group is a power
// of two up to 32 (a partial butterfly, offsets group/2 .. 1) or a multiple of 32 up to 1024
// (warp butterflies, then the group's warps summed in order from 0.f). All threads of the block
// must call it (it syncs when group > 32). `red` is shared memory of at least 32·N floats.
template <int N>
__device__ __forceinline__ void group_sum(float (&v)[N], int group, float* red) {
  if (group <= 32) {
    for (int o = group >> 1; o > 0; o >>= 1)
#pragma unroll
      for (int i = 0; i < N; ++i) v[i] += __shfl_xor_sync(0xffffffffu, v[i], o);
    return;
  }
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = warp_sum(v[i]);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0)
#pragma unroll
    for (int i = 0; i < N; ++i) red[warp * N + i] = v[i];
  __syncthreads();
  const int wpg = group >> 5, first = warp - warp % wpg;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    float s = 0.f;
    for (int w = 0; w < wpg; ++w) s += red[(first + w) * N + i];
    v[i] = s;
  }
  __syncthreads();
}

}  // namespace attnlab::cuda
