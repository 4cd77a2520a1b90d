#pragma once
// Vectorised memory access of every CUDA kernel: a Pack<T, N> is N consecutive elements moved as
// one access (16 bytes when N = kVec16<T>). Kernels take N as a template parameter and
// instantiate N = 1 as the fallback for unaligned pointers or widths (choose_vec picks it).
//   raw:        load_pack / store_pack        (element pointer, the pack as stored)
//               ldg_pack16                    (16 bytes through the read-only cache)
//   converting: load_floats / store_floats    (pack index, widened to / rounded from float)
//               to_floats / from_floats       (a pack already in registers)
//               add_floats                    (float accumulators += floats)
//   guarded:    load_floats_guarded / store_floats_guarded (any row position; whole aligned packs
//               as one access, anything else element by element within [0, S))
#include <cstdint>
#include <initializer_list>

#include "cuda/common.cuh"

namespace attnlab::cuda {

// Elements of T in 16 bytes: 4 for fp32, 8 for bf16.
template <class T>
inline constexpr int kVec16 = int(16 / sizeof(T));

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

__host__ __device__ inline bool is_aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// The widest pack (kVec16<T> or 1) that a row width of C elements and every pointer allow (null
// pointers do not constrain).
template <class T>
int choose_vec(int64_t C, std::initializer_list<const void*> ptrs) {
  constexpr int v = kVec16<T>;
  if (C % v != 0) return 1;
  for (const void* p : ptrs)
    if (p && !is_aligned16(p)) return 1;
  return v;
}

// ---- raw ------------------------------------------------------------------------------------

template <int N, class T>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <int N, class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& v) {
  *reinterpret_cast<Pack<T, N>*>(p) = v;
}

// A 16-byte pack through the read-only data cache (__ldg has no overload for a struct).
template <class T>
__device__ __forceinline__ Pack<T, kVec16<T>> ldg_pack16(const Pack<T, kVec16<T>>* p) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  return *reinterpret_cast<const Pack<T, kVec16<T>>*>(&u);
}

// ---- converting -----------------------------------------------------------------------------
// Copy a pack out of memory before converting it: converting through a reference to memory lets
// the compiler read the elements one by one (no vector access).

template <int N, class T>
__device__ __forceinline__ void to_floats(const Pack<T, N>& q, float (&dst)[N]) {
#pragma unroll
  for (int j = 0; j < N; ++j) dst[j] = to_f(q.v[j]);
}
template <class T, int N>
__device__ __forceinline__ Pack<T, N> from_floats(const float (&src)[N]) {
  Pack<T, N> q;
#pragma unroll
  for (int j = 0; j < N; ++j) q.v[j] = from_f<T>(src[j]);
  return q;
}

// dst = pack p of base (elements [p·N, (p+1)·N)) as floats.
template <int N, class T>
__device__ __forceinline__ void load_floats(float (&dst)[N], const T* base, int p) {
  const Pack<T, N> q = reinterpret_cast<const Pack<T, N>*>(base)[p];  // the copy is the one access
  to_floats<N>(q, dst);
}
// pack p of base = src rounded to T.
template <int N, class T>
__device__ __forceinline__ void store_floats(T* base, int p, const float (&src)[N]) {
  reinterpret_cast<Pack<T, N>*>(base)[p] = from_floats<T, N>(src);
}

// dst[j] += v[j] for N consecutive floats (global or shared memory), as float4 read-modify-writes
// when N allows (dst then 16-byte aligned).
template <int N>
__device__ __forceinline__ void add_floats(float* dst, const float (&v)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int j = 0; j < N; j += 4) {
      float4 a = *reinterpret_cast<float4*>(dst + j);
      a.x += v[j];
      a.y += v[j + 1];
      a.z += v[j + 2];
      a.w += v[j + 3];
      *reinterpret_cast<float4*>(dst + j) = a;
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) dst[j] += v[j];
  }
}

// ---- guarded --------------------------------------------------------------------------------

// out = row[j0, j0 + N) as floats, 0 for positions outside [0, S). One access when the whole
// pack is inside and 16-byte aligned (N = kVec16<T>), element loads otherwise.
template <int N, class T>
__device__ __forceinline__ void load_floats_guarded(const T* row, int64_t j0, int64_t S, float (&out)[N]) {
  if (j0 >= 0 && j0 + N <= S && is_aligned16(row + j0)) {
    const Pack<T, N> q = *reinterpret_cast<const Pack<T, N>*>(row + j0);
    to_floats<N>(q, out);
  } else {
#pragma unroll
    for (int v = 0; v < N; ++v) out[v] = (j0 + v >= 0 && j0 + v < S) ? to_f(row[j0 + v]) : 0.f;
  }
}
// row[j0, j0 + N) = in rounded to T, positions outside [0, S) untouched.
template <int N, class T>
__device__ __forceinline__ void store_floats_guarded(T* row, int64_t j0, int64_t S, const float (&in)[N]) {
  if (j0 >= 0 && j0 + N <= S && is_aligned16(row + j0)) {
    *reinterpret_cast<Pack<T, N>*>(row + j0) = from_floats<T, N>(in);
  } else {
#pragma unroll
    for (int v = 0; v < N; ++v)
      if (j0 + v >= 0 && j0 + v < S) row[j0 + v] = from_f<T>(in[v]);
  }
}

}  // namespace attnlab::cuda
