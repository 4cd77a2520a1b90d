#pragma once
// Tensor-core pieces of the fused attention's bf16 path (attention_fused_mma_forward.cu,
// attention_fused_mma_backward.cu): inline-PTX wrappers for mma.sync m16n8k16 (f32 += bf16·bf16),
// ldmatrix x4 (.trans), cp.async (16 bytes, zero-fill), bf16x2 packing, quad reductions and the
// shared-memory tile geometry. Fragment layouts and the lane → address patterns of ldmatrix are
// core/ops/attention_mma_layout.h's (tested on the CPU); sm_80+. Which calls take this path is
// core/ops/attention_fused_path.h's one predicate.
#include <cstdint>

#include "core/ops/attention_mma_layout.h"
#include "core/ops/attention_mma_rows.h"
#include "cuda/attention_fused.cuh"

namespace attnlab::cuda::fused::mma_path {

using attnlab::mma::c_elem;

constexpr int kMmaWarps = 4;                  // warps per block
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kBlockRows = kMmaWarps * 16;    // query rows per forward / dQ block (16 per warp)
constexpr int kKeyTile = 64;                  // keys per K/V tile (forward, dQ) and per dK/dV block
// Shared-memory rows are padded by 8 bf16 (16 bytes): the 8 row addresses of one ldmatrix matrix
// then fall in 8 distinct 16-byte bank groups, and every row start stays 16-byte aligned for cp.async.
template <int D>
constexpr int padded() {
  return D + 8;
}
using attnlab::mma::kLog2e;

// Bodies of the kernels exist for sm_80+ only (the PTX below needs it); an older device never
// reaches them (fused_mma_refusal sends it to the warp kernels).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define ATTNLAB_MMA_ARCH_OK 0
#else
#define ATTNLAB_MMA_ARCH_OK 1
#endif

// ---- PTX wrappers -------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// d = a·b + d: A 16×16 (4 regs), B 16×8 (2 regs), D 16×8 f32 (4 regs).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// 16 bytes global → shared, asynchronous; `valid` false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Two floats → bf16x2 (lo in the low half: the element with the smaller column).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// ---- tiles ---------------------------------------------------------------------------------

// Copies rows [row0, row0 + nrows) of a row-major [*, D] bf16 array into a padded shared tile
// (row stride padded<D>()), rows ≥ nvalid zero-filled; 16-byte chunks spread over the block.
template <int D>
__device__ __forceinline__ void load_tile_async(bf16_t* dst, const bf16_t* src, int64_t row0, int nrows,
                                                int64_t nvalid) {
  constexpr int kChunks = D / 8;  // 8 bf16 per 16 bytes
  for (int idx = threadIdx.x; idx < nrows * kChunks; idx += kMmaThreads) {
    const int rr = idx / kChunks, ch = idx % kChunks;
    const int64_t row = row0 + rr;
    const bool ok = row < nvalid;
    const bf16_t* s = src + (ok ? row : 0) * D + ch * 8;
    cp_async16(dst + rr * padded<D>() + ch * 8, s, ok);
  }
}

// A fragment of the 16 × 16 block at (r0, c0) of a padded row-major tile.
template <int D>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16_t* tile, int r0, int c0, int lane) {
  const attnlab::mma::RowCol p = attnlab::mma::ldsm_a(lane);
  ldsm_x4(a, tile + (r0 + p.row) * padded<D>() + c0 + p.col);
}
// B fragments of two n8 tiles (rows n0 … n0 + 15 of an N × K tile) for the k16 slice at k0.
template <int D>
__device__ __forceinline__ void load_b(uint32_t (&b)[4], const bf16_t* tile, int n0, int k0, int lane) {
  const attnlab::mma::RowCol p = attnlab::mma::ldsm_b(lane);
  ldsm_x4(b, tile + (n0 + p.row) * padded<D>() + k0 + p.col);
}
// B fragments of two n8 tiles (cols n0 … n0 + 15) for the k16 slice at rows k0 of a K × N tile.
template <int D>
__device__ __forceinline__ void load_bt(uint32_t (&b)[4], const bf16_t* tile, int k0, int n0, int lane) {
  const attnlab::mma::RowCol p = attnlab::mma::ldsm_bt(lane);
  ldsm_x4_trans(b, tile + (k0 + p.row) * padded<D>() + n0 + p.col);
}

// Accumulators of C tiles 2k, 2k + 1 (values already final, f32) → the A fragment of the k-th
// 16-column block (attention_mma_layout.h: register r = tile 2k + r / 2, elements 2(r % 2), +1).
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

// Sum / max over the 4 lanes of a group (the lanes holding one accumulator row).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}
__device__ __forceinline__ float quad_min(float v) {
  v = fminf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  v = fminf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  return v;
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  return v;
}

// Visible keys of query t of batch b (0 past T).
__device__ __forceinline__ int64_t mma_visible(const Common& c, int64_t b, int64_t t) {
  return t < c.T ? attn_visible_keys(c.S, c.klen, b, c.causal, t, c.offset) : 0;
}

// Stores two floats as one bf16x2 (4-byte aligned: even column of a row of even length).
__device__ __forceinline__ void store_bf16x2(bf16_t* dst, float lo, float hi) {
  *reinterpret_cast<uint32_t*>(dst) = pack_bf16(lo, hi);
}

// cp.async copies 16-byte chunks: the tensors' base addresses must be 16-byte aligned (every
// allocation is; a view at a row boundary is too, rows being 128 or 256 bytes).
inline void check_aligned16(const void* ptr, const char* what) {
  CHECK((reinterpret_cast<uintptr_t>(ptr) & 15u) == 0, "attention (fused, CUDA tensor cores): tensor ", what,
        " starts at an address that is not 16-byte aligned; pass a tensor that starts at a row boundary of an "
        "allocation (or a contiguous copy)");
}

void launch_mma_forward(Ctx& ctx, const FwdParams<bf16_t>& p);
void launch_mma_backward(Ctx& ctx, const BwdParams<bf16_t>& p);

}  // namespace attnlab::cuda::fused::mma_path
