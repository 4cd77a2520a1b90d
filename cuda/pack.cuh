#pragma once
// Vector access helpers shared by the memory-bound kernels (row norms, embedding, dropout):
// a "pack" is VEC consecutive elements moved as one 16-byte load or store.
#include <cstdint>

#include "cuda/common.cuh"

namespace attnlab::cuda {

template <class T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <class T>
constexpr int max_vec() {
  return int(16 / sizeof(T));
}

// Null for an undefined (absent or frozen) tensor, whatever dtype it was left with.
template <class T>
T* dptr_or_null(const Tensor& t) {
  return t.defined() ? dptr<T>(t) : nullptr;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <class T, int VEC>
__device__ __forceinline__ void load_pack(float (&dst)[VEC], const T* base, int p) {
  const Pack<T, VEC> q = reinterpret_cast<const Pack<T, VEC>*>(base)[p];
#pragma unroll
  for (int j = 0; j < VEC; ++j) dst[j] = to_f(q.v[j]);
}

template <class T, int VEC>
__device__ __forceinline__ void store_pack(T* base, int p, const float (&src)[VEC]) {
  Pack<T, VEC> q;
#pragma unroll
  for (int j = 0; j < VEC; ++j) q.v[j] = from_f<T>(src[j]);
  reinterpret_cast<Pack<T, VEC>*>(base)[p] = q;
}

}  // namespace attnlab::cuda
