#pragma once
// Pieces of the fused (flash-style) attention kernels shared by their files: the forward
// (attention_fused_forward.cu), the statistics / captured-rows pass (attention_fused_stats.cu)
// and the backward (attention_fused_backward.cu). The kernels mirror the CPU tiled reference
// (core/ops/attention_tiled*.cpp) step for step: a query row is one warp, a key tile is 32 keys
// (one per lane), the per-row state is attention_tiled_row.h's TiledRowState held redundantly by
// every lane of the warp (every reduction is a xor butterfly, so the lanes agree bit for bit), and
// the normalisation / gradient arithmetic is attention_math.h's. Simple fp32 CUDA-core arithmetic
// (bf16 inputs are widened on load). The bf16 tensor-core kernels are attention_fused_mma*.
#include "core/ops/attention_math.h"
#include "core/ops/attention_tiled.h"
#include "core/ops/attention_tiled_row.h"
#include "cuda/common.cuh"

namespace attnlab::cuda::fused {

constexpr int kBc = 32;     // keys per tile: one per lane
constexpr int kWarps = 4;   // query rows per block, one warp each
constexpr int kThreads = kWarps * 32;

// Per-row constants the backward's row pass leaves in the workspace (the CPU reference's layout,
// core/ops/attention_tiled_backward.cpp): per map lse, m, 1/Z, Δ_softmax, Δ_linear, Σ_j g_j; then
// dλ and da of the row.
enum : int { kLse, kMin, kInvZ, kDsm, kDlin, kSumG, kPerMap };
constexpr int kDlam = 2 * kPerMap, kDadd = kDlam + 1, kStats = kDadd + 1;

// Inputs every kernel reads. Pointers are null when absent.
struct Common {
  int64_t B = 0, Hq = 0, Hkv = 0, G = 1, T = 0, S = 0, S_cap = 0, offset = 0;
  int d = 0, dv = 0, nmaps = 1, mode = 0;
  float scale = 1, alpha = 0;
  bool causal = true;
  const int32_t* klen = nullptr;
  const float *add = nullptr, *mul = nullptr, *lam = nullptr;
  int64_t nlam = 0;
};

Common make_common(const AttentionSpec& s, const AttnShape& sh, const Tensor& key_lengths, const Tensor& add,
                   const Tensor& mul, const Tensor& lambda);

// The fixed per-row inputs (TiledRow of the reference).
struct Row {
  int64_t r = 0, b = 0, h = 0, t = 0, n = 0, kv_base = 0;
  AttnRowCtrl<float> ctrl;
  float lambda = 0;
};

__device__ __forceinline__ Row make_row(const Common& c, int64_t r) {
  Row w;
  w.r = r;
  w.b = r / (c.Hq * c.T), w.h = (r / c.T) % c.Hq, w.t = r % c.T;
  w.n = attn_visible_keys(c.S, c.klen, w.b, c.causal, w.t, c.offset);
  w.kv_base = (w.b * c.Hkv + w.h / c.G) * c.S_cap;
  if (c.mul) w.ctrl.tau = c.mul[r];
  if (c.add) w.ctrl.add = c.add[r];
  if (c.nmaps == 2) w.lambda = c.lam[c.nlam == 1 ? 0 : w.h];
  return w;
}

// s·q·k in one fixed order (fma chain over e, then the scale): every kernel that needs a score
// computes it this way, so the backward's m = x at row_min equals the forward's minimum bit for bit.
template <class P, class Q>
__device__ __forceinline__ float score_dot(const P* q, const Q* k, int d, float scale) {
  float s = 0.f;
  for (int e = 0; e < d; ++e) s = fmaf(to_f(q[e]), to_f(k[e]), s);
  return s * scale;
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
// Minimum and the first index where it occurs (index ties: the smaller index).
__device__ __forceinline__ void warp_argmin(float& v, int64_t& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t j = __shfl_xor_sync(0xffffffffu, i, o);
    if (w < v || (w == v && j < i)) v = w, i = j;
  }
}

// Parameters of the forward and of the statistics pass.
template <class T>
struct FwdParams {
  Common c;
  const T *q[2] = {nullptr, nullptr}, *k[2] = {nullptr, nullptr}, *v = nullptr;
  T *out = nullptr, *parts = nullptr;
  int nparts = 1;
  float *lse[2] = {nullptr, nullptr}, *rsum[2] = {nullptr, nullptr};
  int32_t* rmin[2] = {nullptr, nullptr};
  // statistics
  float *ent = nullptr, *kl = nullptr, *var = nullptr, *span_mass = nullptr;
  const int32_t* spans = nullptr;
  int nspans = 0;
  bool gram = false, raw_on = false, softmax_stats = false, second_stats = false;
  // captured rows
  const int32_t* cap_rows = nullptr;
  int64_t nrows = 0;
  float *cap_scores[2] = {nullptr, nullptr}, *cap_probs = nullptr;
};

template <class T>
struct BwdParams {
  Common c;
  const T *q[2] = {nullptr, nullptr}, *k[2] = {nullptr, nullptr}, *v = nullptr, *dout = nullptr;
  const T *out = nullptr, *parts = nullptr;
  int nparts = 1;
  const float *lse[2] = {nullptr, nullptr}, *rsum[2] = {nullptr, nullptr};
  const int32_t* rmin[2] = {nullptr, nullptr};
  T *dq[2] = {nullptr, nullptr}, *dk[2] = {nullptr, nullptr}, *dv = nullptr;
  float *dadd = nullptr, *dmul = nullptr, *dlam = nullptr;
  int64_t ndlam = 0;
  float* stats = nullptr;  // workspace [rows, kStats]
};

template <class T> void launch_forward(Ctx& ctx, const FwdParams<T>& p);
template <class T> void launch_stats(Ctx& ctx, const FwdParams<T>& p);
template <class T> void launch_backward(Ctx& ctx, const BwdParams<T>& p);

}  // namespace attnlab::cuda::fused
