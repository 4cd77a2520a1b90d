#pragma once
// Row normalisation kernels shared by LayerNorm, RMSNorm and (backward only) SimpleRMSNorm.
//
// Layout: a "row group" of `tpr` threads owns one row of C elements; a block holds `rpb` row
// groups. Each thread keeps at most kElemsPerThread elements of its row in registers, as packs of
// VEC elements (16-byte loads when C is a multiple of VEC and every pointer is 16-byte aligned,
// scalar loads otherwise). tpr is a power of two up to 32 (row reductions are warp shuffles)
// or a multiple of 32 up to 1024 (shuffles, then one shared-memory step). A thread always owns
// the same columns, which is what lets backward accumulate dγ/dβ privately (in shared memory
// slots only that thread touches) across all the rows its block visits.
//
// Backward determinism: block b visits row slots b, b+G, b+2G, ... (G = the grid, sized to fill
// the GPU once), folds its row groups in shared memory with a fixed pairwise tree, and writes one
// partial row per block into the scratch; a second kernel sums the G partial rows of each column
// in a fixed order and adds the result into dγ/dβ. No float atomics anywhere, so the result is
// bitwise reproducible for a given GPU model. Scratch: G × nparam × C floats (nparam = 2 for
// LayerNorm, 1 for RMSNorm and SimpleRMSNorm); G ≤ SM count × resident blocks per SM.
#include <algorithm>

#include "core/ops/row_norm.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda::rownorm {

// Which normalisation a kernel computes. SimpleRMSNorm (METHODS §3.5) uses the backward only (its
// forward is cuda/simple_rmsnorm.cu); its saved per-row statistic is den = ρ + eps, not rstd.
enum class Kind { layer, rms, simple_rms };
// Weight-gradient parameters per column: dγ and dβ for LayerNorm, dγ otherwise.
template <Kind K>
inline constexpr int kParams = K == Kind::layer ? 2 : 1;

constexpr int kElemsPerThread = 8;
constexpr int kForwardBlock = 256;   // threads per block we aim for (whole row groups)
constexpr int kBackwardBlock = 512;  // larger: fewer blocks, so fewer partial rows to reduce

struct Layout {
  int vec = 1;    // elements per pack
  int packs = 0;  // C / vec
  int tpr = 1;    // threads per row
  int rpb = 1;    // rows per block
  int block() const { return tpr * rpb; }
};

inline Layout make_layout(int64_t C, int vec, int target_block) {
  CHECK(C >= 1 && C <= kRowNormMaxC, "CUDA row norm: C must be in [1, ", kRowNormMaxC, "], got ", C);
  Layout l;
  l.vec = vec;
  l.packs = int(C / vec);
  const int per_thread = kElemsPerThread / vec;
  const int need = int(ceil_div(l.packs, per_thread));
  int tpr = 1;
  if (need <= 32) {
    while (tpr < need) tpr *= 2;
  } else {
    tpr = int(ceil_div(need, 32) * 32);
  }
  l.tpr = tpr;
  l.rpb = std::max(1, target_block / tpr);
  return l;
}

// One pack held in registers across a row reduction. bf16 packs stay as the raw 32-bit words
// (half the registers of floats; widening a bf16 is a shift), everything else as floats.
template <class T, int VEC>
struct PackRegs {
  float f[VEC];
  __device__ __forceinline__ void load(const T* base, int p) { load_floats<VEC>(f, base, p); }
  __device__ __forceinline__ float get(int j) const { return f[j]; }
};
template <>
struct PackRegs<bf16_t, 8> {
  uint4 q;
  __device__ __forceinline__ void load(const bf16_t* base, int p) { q = reinterpret_cast<const uint4*>(base)[p]; }
  __device__ __forceinline__ float get(int j) const {
    const uint32_t w = j < 2 ? q.x : j < 4 ? q.y : j < 6 ? q.z : q.w;  // j is a compile-time constant
    return __uint_as_float((j & 1) ? (w & 0xffff0000u) : (w << 16));
  }
};

// y = LayerNorm: (x − μ)·rstd·γ + β; RMSNorm (HF Qwen): γ ⊙ T(x·rstd), x̂ rounded to T first.
template <class T, int VEC, Kind K>
__global__ void __launch_bounds__(1024, 1)
    forward_kernel(T* __restrict__ y, float* __restrict__ mean_out, float* __restrict__ rstd_out,
                   const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, int64_t rows, int C,
                   int tpr, float eps) {
  static_assert(K != Kind::simple_rms, "SimpleRMSNorm's forward is cuda/simple_rmsnorm.cu");
  constexpr bool kLayerNorm = K == Kind::layer;
  constexpr int NK = kElemsPerThread / VEC;
  __shared__ float red[32];
  const int rpb = blockDim.x / tpr, rg = threadIdx.x / tpr, t = threadIdx.x % tpr;
  const int64_t row = int64_t(blockIdx.x) * rpb + rg;
  const bool active = row < rows;
  const int packs = C / VEC;
  const T* xr = x + (active ? row : 0) * int64_t(C);
  float v[NK][VEC];
  float sum[1] = {0.f};
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int p = t + k * tpr;
    if (active && p < packs) {
      load_floats<VEC>(v[k], xr, p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) sum[0] += v[k][j];
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) v[k][j] = 0.f;
    }
  }
  float mu = 0.f;
  if (kLayerNorm) {
    group_sum<1>(sum, tpr, red);
    mu = sum[0] / float(C);
  }
  float sq[1] = {0.f};  // LayerNorm: centred second pass over registers (no cancellation)
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int p = t + k * tpr;
    if (active && p < packs)
#pragma unroll
      for (int j = 0; j < VEC; ++j) sq[0] += (v[k][j] - mu) * (v[k][j] - mu);
  }
  group_sum<1>(sq, tpr, red);
  const float rs = rsqrtf(sq[0] / float(C) + eps);
  if (!active) return;  // no block-wide sync below this point
  if (t == 0) {
    if (kLayerNorm) mean_out[row] = mu;
    rstd_out[row] = rs;
  }
  T* yr = y + row * int64_t(C);
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int p = t + k * tpr;
    if (p >= packs) continue;
    float wv[VEC], bv[VEC], o[VEC];
    if (w) load_floats<VEC>(wv, w, p);
    if (kLayerNorm && b) load_floats<VEC>(bv, b, p);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float xh = (v[k][j] - mu) * rs;
      if (kLayerNorm) {
        o[j] = (w ? xh * wv[j] : xh) + (b ? bv[j] : 0.f);
      } else {
        const float xh_t = to_f(from_f<T>(xh));  // HF: x̂.to(input dtype) before the weight
        o[j] = w ? wv[j] * xh_t : xh_t;
      }
    }
    store_floats<VEC>(yr, p, o);
  }
}

// dx = rstd·(g − [LayerNorm: mean(g)] − x̂·mean(g ⊙ x̂)), g = γ ⊙ dy; folds dγ (Σ dy ⊙ x̂) and,
// for LayerNorm, dβ (Σ dy) of the visited rows into partial[blockIdx.x][param][C].
// SimpleRMSNorm: `rstd` holds den = ρ + eps, so the row's factor is 1/den and x̂ = x/den; its dx
// (g/den − Σ(g·x)·x/(den²·C·ρ)) is the RMSNorm form with mean(g ⊙ x̂) scaled by den/ρ (0 when
// ρ = den − eps is 0), which is what `eps` is passed for; dγ = Σ dy ⊙ x̂ as for RMSNorm.
// The weight-gradient accumulators live in shared memory, [rpb][NP][C], each element owned by
// the one thread that owns its column in its row group (no races, no atomics); keeping them out
// of registers is what lets 1024-thread blocks run without spilling.
template <class T, int VEC, Kind K>
__global__ void __launch_bounds__(1024, 1)
    backward_kernel(T* __restrict__ dx, float* __restrict__ partial, const T* __restrict__ dy, const T* __restrict__ x,
                    const T* __restrict__ w, const float* __restrict__ mean, const float* __restrict__ rstd,
                    int64_t rows, int C, int tpr, bool accumulate, float eps) {
  constexpr bool kLayerNorm = K == Kind::layer, kSimple = K == Kind::simple_rms;
  constexpr int NK = kElemsPerThread / VEC;
  constexpr int NP = kParams<K>;           // partial params: dγ (and dβ)
  extern __shared__ float4 acc_storage[];  // [rpb][NP][C] floats when partial != nullptr
  __shared__ float red[32 * 2];
  float* const acc = reinterpret_cast<float*>(acc_storage);
  const int rpb = blockDim.x / tpr, rg = threadIdx.x / tpr, t = threadIdx.x % tpr;
  const int packs = C / VEC;
  float* const my_acc = acc + int64_t(rg) * NP * C;
  if (partial) {
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int p = t + k * tpr;
      if (p >= packs) continue;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        my_acc[p * VEC + j] = 0.f;
        if (kLayerNorm) my_acc[C + p * VEC + j] = 0.f;
      }
    }
  }

  const int64_t slots = (rows + rpb - 1) / rpb;
  for (int64_t slot = blockIdx.x; slot < slots; slot += gridDim.x) {  // uniform over the block
    const int64_t row = slot * rpb + rg;
    const bool active = row < rows;
    const float mu = (kLayerNorm && active) ? mean[row] : 0.f;
    float rs = active ? rstd[row] : 0.f, gx_scale = 1.f;
    if (kSimple && active) {
      const float den = rs, rho = den - eps;
      rs = 1.f / den;
      gx_scale = rho > 0.f ? den / rho : 0.f;
    }
    const int64_t off = (active ? row : 0) * int64_t(C);
    const T* const x_row = x + off;
    const T* const dy_row = dy + off;
    // Raw packs, not floats: bf16 rows then take half the registers; x̂ and g are recomputed.
    PackRegs<T, VEC> xq[NK], dq[NK];
    float sums[2] = {0.f, 0.f};  // Σ g, Σ g·x̂
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int p = t + k * tpr;
      if (!(active && p < packs)) continue;
      xq[k].load(x_row, p);
      dq[k].load(dy_row, p);
      float wv[VEC], dw_part[VEC], db_part[VEC];
      if (w) load_floats<VEC>(wv, w, p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const float xh = (xq[k].get(j) - mu) * rs, d = dq[k].get(j);
        const float g = w ? d * wv[j] : d;
        sums[0] += g;
        sums[1] += g * xh;
        dw_part[j] = d * xh;
        db_part[j] = d;
      }
      if (partial) {
        add_floats<VEC>(my_acc + p * VEC, dw_part);
        if (kLayerNorm) add_floats<VEC>(my_acc + C + p * VEC, db_part);
      }
    }
    if (dx == nullptr) continue;  // uniform: x needs no gradient, only the weight partials
    group_sum<2>(sums, tpr, red);
    if (!active) continue;
    const float mean_g = kLayerNorm ? sums[0] / float(C) : 0.f;
    const float mean_gx = kSimple ? sums[1] / float(C) * gx_scale : sums[1] / float(C);
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int p = t + k * tpr;
      if (p >= packs) continue;
      float o[VEC], prev[VEC], wv[VEC];
      if (w) load_floats<VEC>(wv, w, p);
      if (accumulate) load_floats<VEC>(prev, dx + off, p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        // Scalar rows hold 8 packs per thread: re-reading dy (just loaded, so in L1) instead of
        // keeping it is what keeps them within 64 registers.
        const float d = VEC == 1 ? to_f(dy_row[p]) : dq[k].get(j);
        const float xh = (xq[k].get(j) - mu) * rs;
        const float g = w ? d * wv[j] : d;
        o[j] = rs * (g - mean_g - xh * mean_gx);
        if (accumulate) o[j] += prev[j];
      }
      store_floats<VEC>(dx + off, p, o);
    }
  }
  if (partial == nullptr) return;

  // Fold the row groups with a fixed pairwise tree, then write this block's partial row.
  __syncthreads();
  const int width = NP * C;
  for (int s = 1; s < rpb; s *= 2) {
    const int receivers = (rpb + 2 * s - 1) / (2 * s);  // rg = 0, 2s, 4s, ...
    for (int i = threadIdx.x; i < receivers * width; i += blockDim.x) {
      const int dst = (i / width) * 2 * s, e = i % width;
      if (dst + s < rpb) acc[dst * width + e] += acc[(dst + s) * width + e];
    }
    __syncthreads();
  }
  float* out = partial + int64_t(blockIdx.x) * width;
  for (int e = threadIdx.x; e < width; e += blockDim.x) out[e] = acc[e];
}

// dγ[c] += Σ_g partial[g][0][c], dβ[c] += Σ_g partial[g][1][c], in a fixed order.
// Block (32, 32): x = column in a tile of 32, y = stride over the partial rows.
static __global__ void partial_sum_kernel(float* __restrict__ dw, float* __restrict__ db,
                                          const float* __restrict__ partial, int G, int np, int C) {
  __shared__ float s[32][33];
  const int c = blockIdx.x * 32 + threadIdx.x, param = blockIdx.y;
  float acc = 0.f;
  if (c < C)
    for (int g = threadIdx.y; g < G; g += 32) acc += partial[(int64_t(g) * np + param) * C + c];
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float tot = 0.f;
#pragma unroll 8
  for (int i = 0; i < 32; ++i) tot += s[i][threadIdx.x];
  float* dst = param == 0 ? dw : db;
  if (dst) dst[c] += tot;
}

// ---- launchers ---------------------------------------------------------------------------

template <class T, Kind K>
void forward(Ctx& ctx, T* y, float* mean, float* rstd, const T* x, const T* w, const T* b, int64_t rows, int64_t C,
             float eps) {
  const int vec = choose_vec<T>(C, {y, x, w, b});
  const Layout l = make_layout(C, vec, kForwardBlock);
  const int64_t grid = ceil_div(rows, l.rpb);
  if (vec == 1)
    forward_kernel<T, 1, K><<<grid, l.block(), 0, stream_of(ctx)>>>(y, mean, rstd, x, w, b, rows, int(C), l.tpr, eps);
  else
    forward_kernel<T, kVec16<T>, K>
        <<<grid, l.block(), 0, stream_of(ctx)>>>(y, mean, rstd, x, w, b, rows, int(C), l.tpr, eps);
  CUDA_CHECK_LAUNCH();
}

// Shared memory of the backward weight-gradient accumulators, [rpb][np][C] floats (≤ 64 KiB).
inline size_t acc_bytes(const Layout& l, int64_t C, int np) { return size_t(l.rpb) * np * C * sizeof(float); }

// Blocks of the backward grid: enough to fill the GPU once, never more than the row slots.
template <class T, int VEC, Kind K>
int64_t backward_grid(const Ctx& ctx, const Layout& l, int64_t rows, int64_t C) {
  constexpr int np = kParams<K>;
  int per_sm = 0, sms = 0;
  const size_t smem = acc_bytes(l, C, np);
  // Above 48 KiB a kernel must opt in to dynamic shared memory (per device, idempotent).
  CUDA_CHECK(cudaFuncSetAttribute(backward_kernel<T, VEC, K>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, backward_kernel<T, VEC, K>, l.block(), smem));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, std::max(0, ctx.device_index)));
  return std::min<int64_t>(ceil_div(rows, l.rpb), int64_t(std::max(1, per_sm)) * sms);
}

// Scratch floats for any pointer alignment (the pack width is picked per call).
template <class T, Kind K>
size_t backward_scratch_floats(const Ctx& ctx, int64_t rows, int64_t C) {
  constexpr int np = kParams<K>;
  if (rows <= 0) return 0;
  int64_t g = backward_grid<T, 1, K>(ctx, make_layout(C, 1, kBackwardBlock), rows, C);
  if (C % kVec16<T> == 0)
    g = std::max(g, backward_grid<T, kVec16<T>, K>(ctx, make_layout(C, kVec16<T>, kBackwardBlock), rows, C));
  return size_t(g) * np * size_t(C);
}

template <class T, int VEC, Kind K>
void launch_backward(Ctx& ctx, const Layout& l, T* dx, float* dw, float* db, float* scratch, size_t scratch_floats,
                     const T* dy, const T* x, const T* w, const float* mean, const float* rstd, int64_t rows, int64_t C,
                     bool accumulate, float eps) {
  constexpr int np = kParams<K>;
  const bool want_partials = dw != nullptr || db != nullptr;
  const int64_t grid = backward_grid<T, VEC, K>(ctx, l, rows, C);
  if (want_partials) {
    const size_t need = size_t(grid) * np * size_t(C);
    CHECK(scratch != nullptr && scratch_floats >= need,
          "row norm backward: the weight gradient needs an f32 scratch of ", need,
          " floats (ask *_backward_scratch_floats), got ", scratch ? scratch_floats : 0);
  }
  const size_t smem = want_partials ? acc_bytes(l, C, np) : 0;
  backward_kernel<T, VEC, K><<<grid, l.block(), smem, stream_of(ctx)>>>(
      dx, want_partials ? scratch : nullptr, dy, x, w, mean, rstd, rows, int(C), l.tpr, accumulate, eps);
  CUDA_CHECK_LAUNCH();
  if (!want_partials) return;
  partial_sum_kernel<<<dim3(unsigned(ceil_div(C, 32)), np), dim3(32, 32), 0, stream_of(ctx)>>>(dw, db, scratch,
                                                                                               int(grid), np, int(C));
  CUDA_CHECK_LAUNCH();
}

// `rstd`: den for SimpleRMSNorm; `eps`: SimpleRMSNorm's (ρ = den − eps), unused by the others.
template <class T, Kind K>
void backward(Ctx& ctx, T* dx, float* dw, float* db, float* scratch, size_t scratch_floats, const T* dy, const T* x,
              const T* w, const float* mean, const float* rstd, int64_t rows, int64_t C, bool accumulate,
              float eps = 0.f) {
  const int vec = choose_vec<T>(C, {dx, dy, x, w});
  const Layout l = make_layout(C, vec, kBackwardBlock);
  if (vec == 1)
    launch_backward<T, 1, K>(ctx, l, dx, dw, db, scratch, scratch_floats, dy, x, w, mean, rstd, rows, C, accumulate,
                             eps);
  else
    launch_backward<T, kVec16<T>, K>(ctx, l, dx, dw, db, scratch, scratch_floats, dy, x, w, mean, rstd, rows, C,
                                     accumulate, eps);
}

}  // namespace attnlab::cuda::rownorm
