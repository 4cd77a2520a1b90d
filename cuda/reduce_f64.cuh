#pragma once
// Double-precision block sums for reductions that must be accurate and identical run to run
// (loss means, gradient norms). The tree is fixed by blockDim alone, and no atomics are used,
// so the same inputs give the same bits on every run.
#include <cuda_runtime.h>

namespace attnlab::cuda {

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// blockDim.x a multiple of 32 (<= 1024); `shared` holds >= 32 doubles. Thread 0 gets the sum
// (the other threads of warp 0 too).
__device__ __forceinline__ double block_sum_f64(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum_f64(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) v = warp_sum_f64(lane < nw ? shared[lane] : 0.0);
  return v;
}

}  // namespace attnlab::cuda
