#pragma once
// 16-byte vector loads and stores for the memory-bound elementwise kernels (GELU, SwiGLU, RoPE,
// permute). A Pack<T, N> is N consecutive elements moved as one access; kernels take N as a
// template parameter and instantiate N = 1 as the fallback for unaligned pointers or widths.
#include <cstdint>

#include "cuda/common.cuh"

namespace attnlab::cuda {

// Elements of T in 16 bytes: 4 for fp32, 8 for bf16.
template <class T>
inline constexpr int kVec16 = int(16 / sizeof(T));

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <int N, class T>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <int N, class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& v) {
  *reinterpret_cast<Pack<T, N>*>(p) = v;
}

inline bool is_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Blocks for a grid-stride loop over `work` items: enough to fill every SM several times over,
// no more (extra blocks only add scheduling cost).
inline int64_t grid_for(int64_t work, int threads) {
  return std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, threads), 132 * 16));
}

}  // namespace attnlab::cuda
