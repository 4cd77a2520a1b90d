// Row kernels of the materialized attention: one thread block per row (b, query head, t). The
// row's visible keys live in registers (NV 16-byte vectors per thread), so a row is read once
// and written once: mask, controllers, normalisation, the differential combination, captures and
// statistics are fused into one kernel forward and one backward. Keys beyond the visible prefix
// are never read, only zero-filled where the next GEMM reads them. The arithmetic is the CPU's
// (core/ops/attention_math.h).
#include <climits>

#include "core/ops/attention_math.h"
#include "cuda/attention_internal.cuh"
#include "cuda/reduce.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda::attn {
namespace {

// Elements are grouped in 16-byte vectors aligned in memory: vector k of a row covers elements
// [k·V − mis, (k+1)·V − mis), mis = the row start's misalignment in elements. Partial vectors at
// either end (and buffers with another alignment) fall back to bounds-checked scalar access
// (load_floats_guarded / store_floats_guarded, cuda/vec_access.cuh).
//
// Row reductions fold the warps in order (block_allreduce_inorder, cuda/reduce.cuh), N values
// per barrier pair; dlambda_reduce_kernel uses the butterfly block_sum.

struct RowIndex {
  int64_t r, b, h, t, n;
};
__device__ __forceinline__ RowIndex row_index(const RowCommon& c) {
  RowIndex ri;
  ri.r = blockIdx.x;
  ri.t = ri.r % c.T;
  ri.h = (ri.r / c.T) % c.Hq;
  ri.b = ri.r / (c.T * c.Hq);
  ri.n = attn_visible_keys(c.S, c.key_lengths, ri.b, c.causal, ri.t, c.offset);
  return ri;
}
__device__ __forceinline__ AttnRowCtrl<float> row_ctrl(const RowCommon& c, int64_t r) {
  AttnRowCtrl<float> ctrl;
  if (c.score_mul) ctrl.tau = c.score_mul[r];
  if (c.score_add) ctrl.add = c.score_add[r];
  return ctrl;
}

template <class T, int NV, bool DIFF>
__global__ void __launch_bounds__(1024) forward_rows_kernel(FwdRowParams<T> p) {
  constexpr int V = int(16 / sizeof(T));
  constexpr int M = DIFF ? 2 : 1;
  __shared__ float red[32 * 8];
  const RowCommon& c = p.c;
  const RowIndex ri = row_index(c);
  const int64_t S = c.S, n = ri.n, base = ri.r * S;
  const AttnRowCtrl<float> ctrl = row_ctrl(c, ri.r);
  const float lam = DIFF ? c.lambda[c.nlambda == 1 ? 0 : ri.h] : 0.f;
  const int mis = int((reinterpret_cast<uintptr_t>(p.maps[0] + base) & 15u) / sizeof(T));
  const int64_t nvec_all = (S + mis + V - 1) / V, nvec_vis = (n + mis + V - 1) / V;
  const int tid = threadIdx.x, bs = blockDim.x;

  // Score captures read the whole row before any thread overwrites it in place (the first
  // block reduction below is the barrier that orders them).
  int64_t slot = -1;
  for (int64_t i = 0; p.cap_rows && i < p.nrows; ++i)
    if (p.cap_rows[i] == ri.t) {
      slot = i;
      break;
    }
  const int64_t cap_off = slot >= 0 ? ((ri.b * c.Hq + ri.h) * p.nrows + slot) * S : 0;
  if (slot >= 0)
    for (int m = 0; m < M; ++m)
      if (p.cap_scores[m])
        for (int64_t j = tid; j < S; j += bs) p.cap_scores[m][cap_off + j] = ctrl.apply(to_f(p.maps[m][base + j]));

  float raw[M][NV][V];
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (k < nvec_vis) load_floats_guarded<V>(p.maps[m] + base, k * V - mis, S, raw[m][i]);
      else
#pragma unroll
        for (int v = 0; v < V; ++v) raw[m][i][v] = 0.f;
    }
  }
  const bool want_kl = p.kl != nullptr;
  // Pass 1: max x, min x (first index), max of the raw scores (KL reference).
  float mx[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};  // mx0 mx1 −mn0 −mn1 mxr
  int imin[2] = {INT_MAX, INT_MAX};
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = k * V - mis + v;
      if (k >= nvec_vis || j < 0 || j >= n) continue;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float x = ctrl.apply(raw[m][i][v]);
        mx[m] = fmaxf(mx[m], x);
        if (-x > mx[2 + m]) mx[2 + m] = -x, imin[m] = int(j);
      }
      mx[4] = fmaxf(mx[4], raw[0][i][v]);
    }
  }
  // Plain softmax (one map, no KL) reduces one value per pass: fewer shuffles and no argmin.
  const bool lean = M == 1 && !want_kl && c.mode == int(AttnNorm::softmax);
  float local_mn[2] = {-mx[2], -mx[3]};
  if (lean) {
    block_allreduce_inorder<1>(reinterpret_cast<float(&)[1]>(mx[0]), red, MaxOp{});
  } else {
    block_allreduce_inorder<5>(mx, red, MaxOp{});
#pragma unroll
    for (int m = 0; m < 2; ++m)
      if (local_mn[m] != -mx[2 + m]) imin[m] = INT_MAX;
    block_allreduce_inorder<2>(imin, reinterpret_cast<int*>(red + 32 * 5), MinOp{});
  }
  // Pass 2: Σ exp(x − max), Σ (x − min + 1), Σ exp(raw − max raw).
  float sums[5] = {0, 0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = k * V - mis + v;
      if (k >= nvec_vis || j < 0 || j >= n) continue;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float x = ctrl.apply(raw[m][i][v]);
        if (attn_needs_max(c.mode)) sums[m] += expf(x - mx[m]);
        if (attn_needs_min(c.mode)) sums[2 + m] += x + mx[2 + m] + 1.f;
      }
      if (want_kl) sums[4] += expf(raw[0][i][v] - mx[4]);
    }
  }
  if (lean) block_allreduce_inorder<1>(reinterpret_cast<float(&)[1]>(sums[0]), red, SumOp{});
  else block_allreduce_inorder<5>(sums, red, SumOp{});
  AttnRowNorm<float> norm[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    norm[m] = attn_make_norm<float>(c.mode, c.alpha, n, mx[m], sums[m], -mx[2 + m], sums[2 + m]);
    if (tid == 0) {
      if (p.lse[m]) p.lse[m][ri.r] = norm[m].lse;
      if (p.row_min[m]) p.row_min[m][ri.r] = n > 0 ? imin[m] : -1;
      if (p.row_sum[m]) p.row_sum[m][ri.r] = n > 0 ? sums[2 + m] : 0.f;
    }
  }
  const float lse_raw = n > 0 && want_kl ? mx[4] + logf(sums[4]) : 0.f;

  // Pass 3: probabilities (written in place over the scores), statistics, captures.
  const bool normalised = c.mode != int(AttnNorm::relaxed_linear);
  const float centre = n > 0 && normalised ? (1.f - lam) / float(n) : 0.f;
  const bool want_stats = p.entropy || want_kl;
  float st[4] = {0, 0, 0, 0};  // entropy, KL, Σ(P − c), Σ(P − c)²
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
    if (k >= nvec_all) continue;
    float out[M][V], comb[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = k * V - mis + v;
      comb[v] = 0.f;
#pragma unroll
      for (int m = 0; m < M; ++m) out[m][v] = 0.f;
      if (k >= nvec_vis || j < 0 || j >= n) continue;
      const float x0 = ctrl.apply(raw[0][i][v]);
      out[0][v] = norm[0].prob(x0);
      comb[v] = out[0][v];
      if (DIFF) {
        out[M - 1][v] = norm[M - 1].prob(ctrl.apply(raw[M - 1][i][v]));
        comb[v] = out[0][v] - lam * out[M - 1][v];
      }
      if (want_stats) {
        const float logp = norm[0].log_prob(x0, out[0][v]);
        st[0] += attn_entropy_term(comb[v], logp);
        if (want_kl) st[1] += attn_kl_term(raw[0][i][v], lse_raw, logp);
      }
      st[2] += comb[v] - centre;
      st[3] += (comb[v] - centre) * (comb[v] - centre);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) store_floats_guarded<V>(p.maps[m] + base, k * V - mis, S, out[m]);
    if (DIFF) store_floats_guarded<V>(p.pcomb + base, k * V - mis, S, comb);
    if (slot >= 0 && p.cap_probs)
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t j = k * V - mis + v;
        if (j >= 0 && j < S) p.cap_probs[cap_off + j] = comb[v];
      }
#pragma unroll
    for (int v = 0; v < V; ++v) raw[0][i][v] = comb[v];  // kept for the span sums
  }
  if (want_stats || p.variance) {
    block_allreduce_inorder<4>(st, red, SumOp{});
    if (tid == 0) {
      if (p.entropy) p.entropy[ri.r] = st[0];
      if (p.kl) p.kl[ri.r] = st[1];
      if (p.variance) p.variance[ri.r] = attn_variance(st[2], st[3], n);
    }
  }
  for (int64_t s = 0; s < p.nspans; ++s) {
    const int64_t lo = p.spans[2 * s], hi = min(int64_t(p.spans[2 * s + 1]), n);
    float mass[1] = {0.f};
#pragma unroll
    for (int i = 0; i < NV; ++i) {
      const int64_t k = tid + int64_t(i) * bs;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t j = k * V - mis + v;
        if (k < nvec_vis && j >= lo && j < hi && j >= 0) mass[0] += raw[0][i][v];
      }
    }
    block_allreduce_inorder<1>(mass, red, SumOp{});
    if (tid == 0) p.span_mass[ri.r * p.nspans + s] = mass[0];
  }
}

template <class T, int NV, bool DIFF, bool SCORES>
__global__ void __launch_bounds__(1024) backward_rows_kernel(BwdRowParams<T> p) {
  constexpr int V = int(16 / sizeof(T));
  constexpr int M = DIFF ? 2 : 1;
  __shared__ float red[32 * 8];
  const RowCommon& c = p.c;
  const RowIndex ri = row_index(c);
  const int64_t S = c.S, n = ri.n, base = ri.r * S;
  const AttnRowCtrl<float> ctrl = row_ctrl(c, ri.r);
  const float lam = DIFF ? c.lambda[c.nlambda == 1 ? 0 : ri.h] : 0.f;
  const float gscale[2] = {1.f, -lam};
  const int mis = int((reinterpret_cast<uintptr_t>(p.dp + base) & 15u) / sizeof(T));
  const int64_t nvec_all = (S + mis + V - 1) / V, nvec_vis = (n + mis + V - 1) / V;
  const int tid = threadIdx.x, bs = blockDim.x;

  AttnRowGrad<float> grad[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    grad[m].n = n;
    grad[m].norm.mode = c.mode;
    grad[m].norm.alpha = c.alpha;
    if (n == 0) continue;
    if (attn_needs_max(c.mode)) grad[m].norm.lse = p.lse[m][ri.r];
    if (attn_needs_min(c.mode)) {
      grad[m].imin = p.row_min[m][ri.r];
      grad[m].norm.inv_z = 1.f / p.row_sum[m][ri.r];
      // Read before the first barrier: the scores buffers are overwritten in place below.
      if (SCORES) grad[m].norm.mn = ctrl.apply(to_f(p.scores[m][base + grad[m].imin]));
    }
  }

  float pv[M][NV][V], g[NV][V], sc[SCORES ? M : 1][NV][V];
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
    const bool vis = k < nvec_vis;
#pragma unroll
    for (int v = 0; v < V; ++v) g[i][v] = 0.f;
    if (vis) load_floats_guarded<V>(p.dp + base, k * V - mis, S, g[i]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int v = 0; v < V; ++v) pv[m][i][v] = 0.f, sc[SCORES ? m : 0][i][v] = 0.f;
      if (vis) load_floats_guarded<V>(p.probs[m] + base, k * V - mis, S, pv[m][i]);
      if (SCORES && vis) load_floats_guarded<V>(p.scores[m] + base, k * V - mis, S, sc[SCORES ? m : 0][i]);
    }
  }
  // Pass 1: per map Σ g·P (or Σ g·P_softmax), Σ g·P_linear, Σ g; and −Σ dP·A2 for dλ.
  float sums[7] = {0, 0, 0, 0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = k * V - mis + v;
      if (k >= nvec_vis || j < 0 || j >= n) continue;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float gj = gscale[m] * g[i][v];
        if (SCORES && c.mode == int(AttnNorm::ramp)) {
          const float x = ctrl.apply(sc[SCORES ? m : 0][i][v]);
          sums[3 * m] += gj * grad[m].norm.softmax_p(x);
          sums[3 * m + 1] += gj * grad[m].norm.linear_p(x);
        } else {
          sums[3 * m] += gj * pv[m][i][v];
          if (c.mode == int(AttnNorm::softmax)) sums[3 * m + 1] += pv[m][i][v];
        }
        sums[3 * m + 2] += gj;
      }
      if (DIFF) sums[6] -= g[i][v] * pv[M - 1][i][v];
    }
  }
  block_allreduce_inorder<7>(sums, red, SumOp{});
#pragma unroll
  for (int m = 0; m < M; ++m) {
    grad[m].dot = sums[3 * m], grad[m].dot_lin = sums[3 * m + 1], grad[m].sum_g = sums[3 * m + 2];
    grad[m].finish();
  }
  if (DIFF && tid == 0 && p.dlambda_partials) p.dlambda_partials[ri.r] = sums[6];

  // Pass 2: dSc = dx·τ per map (in place), the combined map for dV, controller sums.
  float csum[2] = {0.f, 0.f};  // Σ dx·Sc (dτ), Σ dx (da)
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int64_t k = tid + int64_t(i) * bs;
    if (k >= nvec_all) continue;
    float out[M][V], comb[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = k * V - mis + v;
      comb[v] = 0.f;
#pragma unroll
      for (int m = 0; m < M; ++m) out[m][v] = 0.f;
      if (k >= nvec_vis || j < 0 || j >= n) continue;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float raw = SCORES ? sc[SCORES ? m : 0][i][v] : 0.f;
        const float dx = grad[m].dx(j, gscale[m] * g[i][v], pv[m][i][v], ctrl.apply(raw));
        csum[0] += dx * raw;
        csum[1] += dx;
        out[m][v] = dx * ctrl.tau;
      }
      if (DIFF) comb[v] = pv[0][i][v] - lam * pv[M - 1][i][v];
    }
    store_floats_guarded<V>(p.dp + base, k * V - mis, S, out[0]);
    if (DIFF) {
      store_floats_guarded<V>(p.dsc2 + base, k * V - mis, S, out[M - 1]);
      store_floats_guarded<V>(p.pcomb + base, k * V - mis, S, comb);
    }
  }
  if (p.dscore_add || p.dscore_mul) {
    block_allreduce_inorder<2>(csum, red, SumOp{});
    if (tid == 0) {
      if (p.dscore_mul) p.dscore_mul[ri.r] = csum[0];
      if (p.dscore_add) p.dscore_add[ri.r] = csum[1];
    }
  }
}

__global__ void dlambda_reduce_kernel(const float* __restrict__ partials, float* __restrict__ dlambda,
                                      int64_t nlambda, int64_t B, int64_t Hq, int64_t T) {
  __shared__ float red[32];
  const int64_t h = blockIdx.x;
  const int64_t count = nlambda == 1 ? B * Hq * T : B * T;
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
    acc += partials[nlambda == 1 ? i : ((i / T) * Hq + h) * T + i % T];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) dlambda[h] = acc;
}

// Vectors per thread (NV) and threads per row: the whole row fits in registers, with at most
// 512 threads unless the row needs more (then up to 1024 with 8 vectors each).
template <class T>
void row_config(int64_t S, bool aligned, int& nv, int& threads) {
  const int64_t V = int64_t(16 / sizeof(T));
  // Misaligned rows can straddle one more vector: up to V − 1 extra elements.
  const int64_t nvec = aligned ? ceil_div(S, V) : (S + 2 * V - 2) / V;
  for (int cand : {1, 2, 4, 8}) {
    nv = cand;
    if (ceil_div(nvec, cand) <= 512) break;
  }
  const int64_t t = ceil_div(ceil_div(nvec, nv), 32) * 32;
  CHECK(t <= 1024, "attention: rows of ", S, " keys exceed the materialized kernel's limit of ",
        1024 * 8 * V - V, " (use the fused kernel for longer contexts)");
  threads = int(std::max<int64_t>(t, 32));
}

// Every row starts on a 16-byte boundary (the kernels then see mis = 0 on every row).
template <class T>
bool rows_aligned(const T* base, int64_t S) {
  return (reinterpret_cast<uintptr_t>(base) & 15u) == 0 && (S * int64_t(sizeof(T))) % 16 == 0;
}

template <class T, bool DIFF>
void launch_fwd(Ctx& ctx, const FwdRowParams<T>& p, int nv, int threads) {
  const dim3 grid{unsigned(p.c.rows)}, block{unsigned(threads)};
  switch (nv) {
    case 1: forward_rows_kernel<T, 1, DIFF><<<grid, block, 0, stream_of(ctx)>>>(p); break;
    case 2: forward_rows_kernel<T, 2, DIFF><<<grid, block, 0, stream_of(ctx)>>>(p); break;
    case 4: forward_rows_kernel<T, 4, DIFF><<<grid, block, 0, stream_of(ctx)>>>(p); break;
    default: forward_rows_kernel<T, 8, DIFF><<<grid, block, 0, stream_of(ctx)>>>(p); break;
  }
  CUDA_CHECK_LAUNCH();
}

template <class T, bool DIFF, bool SCORES>
void launch_bwd(Ctx& ctx, const BwdRowParams<T>& p, int nv, int threads) {
  const dim3 grid{unsigned(p.c.rows)}, block{unsigned(threads)};
  switch (nv) {
    case 1: backward_rows_kernel<T, 1, DIFF, SCORES><<<grid, block, 0, stream_of(ctx)>>>(p); break;
    case 2: backward_rows_kernel<T, 2, DIFF, SCORES><<<grid, block, 0, stream_of(ctx)>>>(p); break;
    case 4: backward_rows_kernel<T, 4, DIFF, SCORES><<<grid, block, 0, stream_of(ctx)>>>(p); break;
    default: backward_rows_kernel<T, 8, DIFF, SCORES><<<grid, block, 0, stream_of(ctx)>>>(p); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void launch_forward_rows(Ctx& ctx, const FwdRowParams<T>& p) {
  if (p.c.rows == 0) return;
  CHECK(p.c.rows < (int64_t(1) << 31), "attention: ", p.c.rows, " rows exceed the grid limit");
  int nv = 1, threads = 32;
  row_config<T>(p.c.S, rows_aligned(p.maps[0], p.c.S), nv, threads);
  if (p.c.nmaps == 2) launch_fwd<T, true>(ctx, p, nv, threads);
  else launch_fwd<T, false>(ctx, p, nv, threads);
}

template <class T>
void launch_backward_rows(Ctx& ctx, const BwdRowParams<T>& p) {
  if (p.c.rows == 0) return;
  CHECK(p.c.rows < (int64_t(1) << 31), "attention: ", p.c.rows, " rows exceed the grid limit");
  int nv = 1, threads = 32;
  row_config<T>(p.c.S, rows_aligned(p.dp, p.c.S), nv, threads);
  const bool diff = p.c.nmaps == 2, scores = p.scores[0] != nullptr;
  if (diff && scores) launch_bwd<T, true, true>(ctx, p, nv, threads);
  else if (diff) launch_bwd<T, true, false>(ctx, p, nv, threads);
  else if (scores) launch_bwd<T, false, true>(ctx, p, nv, threads);
  else launch_bwd<T, false, false>(ctx, p, nv, threads);
}

void launch_dlambda_reduce(Ctx& ctx, const float* partials, float* dlambda, int64_t nlambda, int64_t B,
                           int64_t Hq, int64_t T) {
  dlambda_reduce_kernel<<<unsigned(nlambda), 256, 0, stream_of(ctx)>>>(partials, dlambda, nlambda, B, Hq, T);
  CUDA_CHECK_LAUNCH();
}

template void launch_forward_rows<float>(Ctx&, const FwdRowParams<float>&);
template void launch_forward_rows<bf16_t>(Ctx&, const FwdRowParams<bf16_t>&);
template void launch_backward_rows<float>(Ctx&, const BwdRowParams<float>&);
template void launch_backward_rows<bf16_t>(Ctx&, const BwdRowParams<bf16_t>&);

}  // namespace attnlab::cuda::attn
