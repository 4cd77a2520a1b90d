#pragma once
// Device side of optim/param_table.h: which slot a chunk of the concatenated element space
// belongs to.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "optim/param_table.h"

namespace attnlab::cuda {

// The last entry whose chunk_begin <= chunk (entries are sorted by chunk_begin; an empty slot
// shares its chunk_begin with the next one and is skipped). A few L1-cached loads per chunk.
__device__ __forceinline__ int find_param_entry(const ParamTableEntry* table, int n, int64_t chunk) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table[mid].chunk_begin <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

inline int sm_count_of(const Ctx& ctx) {
  int n = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, ctx.device_index));
  return n;
}

}  // namespace attnlab::cuda
