// Fused attention backward (CUDA), FlashAttention-2's recomputation in the reference's order
// (core/ops/attention_tiled_backward.cpp), deterministic: every accumulator has one owner thread
// and a fixed summation order, no floating-point atomics, so two runs agree bit for bit.
//   1. rows:  one warp per row: Δ per map and part, Σ_j g_j = dO·Σ_{j<n} v_j, m = x at row_min,
//             1/Z, dλ and da of the row → the workspace [rows, kStats].
//   2. dK/dV: one block per (batch, kv head, 32-key tile); the rows of every head of the group in
//             order, four at a time (one warp each scores the 32 keys), then every thread adds the
//             four rows' terms to the dK / dV entries it owns (shared memory), in row order.
//   3. dQ:    one block per four query rows (a warp each), the key tiles in order; the lane that
//             owns a dQ column adds the 32 keys' terms in key order; then dQ = τ·dQ_acc,
//             dτ = Σ_maps q·dQ_acc, da.
//   4. dλ:    one block per λ entry sums the rows' dλ terms in a fixed tree.
// Cache slots [S, S_cap) of dK, dK2, dV are zeroed.
#include "cuda/attention_fused.cuh"

namespace attnlab::cuda::fused {

namespace {

template <class T>
__device__ __forceinline__ AttnRowGrad<float> row_grad(const BwdParams<T>& p, const float* st, int m, int64_t r,
                                                       int64_t n) {
  AttnRowGrad<float> g;
  const float* s = st + m * kPerMap;
  g.n = n;
  g.imin = p.rmin[m] ? p.rmin[m][r] : -1;
  g.norm.mode = p.c.mode, g.norm.alpha = p.c.alpha;
  g.norm.lse = s[kLse], g.norm.mn = s[kMin], g.norm.inv_z = s[kInvZ];
  g.dot = p.c.mode == int(AttnNorm::linear) ? s[kDlin] : s[kDsm];
  g.dot_lin = p.c.mode == int(AttnNorm::ramp) ? s[kDlin] : 0.f;
  g.sum_g = s[kSumG];
  return g;
}

template <class T>
__global__ void __launch_bounds__(kThreads) rows_kernel(BwdParams<T> p) {
  const Common& c = p.c;
  const int lane = threadIdx.x % 32, nm = c.nmaps, mode = c.mode, d = c.d, dv = c.dv;
  const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (r >= c.B * c.Hq * c.T) return;
  const Row rw = make_row(c, r);
  float* st = p.stats + r * kStats;
  for (int i = lane; i < kStats; i += 32) st[i] = 0.f;
  __syncwarp();
  if (rw.n == 0) return;
  const T* go = p.dout + r * dv;
  const int nper = p.nparts / nm;
  auto dot_dout = [&](int m, int k) {
    const T* x = p.nparts == 1 ? p.out + r * dv : p.parts + (r * p.nparts + m * nper + k) * dv;
    float a = 0.f;
    for (int e = lane; e < dv; e += 32) a += to_f(go[e]) * to_f(x[e]);
    return warp_sum(a);
  };
  float g_all = 0.f;
  if (attn_needs_min(mode)) {
    for (int e = lane; e < dv; e += 32) {
      float vs = 0.f;
      for (int64_t j = 0; j < rw.n; ++j) vs += to_f(p.v[(rw.kv_base + j) * dv + e]);
      g_all += to_f(go[e]) * vs;
    }
    g_all = warp_sum(g_all);
  }
  const float gscale[2] = {1.f, -rw.lambda};
  const bool ramp = mode == int(AttnNorm::ramp);
  float vals[2][kPerMap] = {};
  for (int m = 0; m < nm; ++m) {
    if (attn_needs_max(mode)) {
      vals[m][kLse] = p.lse[m][r];
      vals[m][kDsm] = gscale[m] * dot_dout(m, 0);
    }
    if (attn_needs_min(mode)) {
      const int64_t imin = p.rmin[m][r];
      vals[m][kMin] = rw.ctrl.apply(score_dot(p.q[m] + r * d, p.k[m] + (rw.kv_base + imin) * d, d, c.scale));
      vals[m][kInvZ] = 1.f / p.rsum[m][r];
      vals[m][kDlin] = gscale[m] * dot_dout(m, ramp ? 1 : 0);
    }
    vals[m][kSumG] = gscale[m] * g_all;
  }
  float dlam = 0.f;
  if (nm == 2) {
    dlam = ramp ? -((1.f - c.alpha) * dot_dout(1, 0) + c.alpha * dot_dout(1, 1)) : -dot_dout(1, 0);
  }
  if (lane == 0) {
    for (int m = 0; m < nm; ++m)
      for (int i = 0; i < kPerMap; ++i) st[m * kPerMap + i] = vals[m][i];
    st[kDlam] = dlam;
    st[kDadd] = 0.f;  // Σ_j dx_j vanishes for every normalising map (relaxed_linear is not fused)
  }
}

template <int D, int DV>
size_t dkdv_smem(int nm) {
  return sizeof(float) * (size_t(nm) * kBc * (D + 1) + size_t(kBc) * (DV + 1) + size_t(kWarps) * nm * D +
                          size_t(kWarps) * DV + size_t(kWarps) * (nm + 1) * kBc + size_t(nm) * kBc * D +
                          size_t(kBc) * DV);
}

template <class T, int D, int DV>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(BwdParams<T> p) {
  const Common& c = p.c;
  const int nm = c.nmaps;
  extern __shared__ float smem[];
  float* ks = smem;                              // [nm][kBc][D + 1]
  float* vs = ks + nm * kBc * (D + 1);           // [kBc][DV + 1]
  float* qs = vs + kBc * (DV + 1);               // [kWarps][nm][D]
  float* gs = qs + kWarps * nm * D;              // [kWarps][DV] dO rows
  float* ds = gs + kWarps * DV;                  // [kWarps][nm + 1][kBc]: dS·τ·s per map, then P
  float* dk_acc = ds + kWarps * (nm + 1) * kBc;  // [nm][kBc][D]
  float* dv_acc = dk_acc + nm * kBc * D;         // [kBc][DV]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ntk = (c.S + kBc - 1) / kBc;
  const int64_t bk = blockIdx.x / ntk, j0 = (blockIdx.x % ntk) * kBc;
  const int64_t b = bk / c.Hkv, hkv = bk % c.Hkv, kv0 = bk * c.S_cap;
  const int64_t j1 = j0 + kBc < c.S ? j0 + kBc : c.S;
  for (int idx = threadIdx.x; idx < nm * kBc * D; idx += kThreads) {
    const int m = idx / (kBc * D), jj = (idx / D) % kBc, e = idx % D;
    ks[(m * kBc + jj) * (D + 1) + e] = j0 + jj < j1 ? to_f(p.k[m][(kv0 + j0 + jj) * D + e]) : 0.f;
    dk_acc[idx] = 0.f;
  }
  for (int idx = threadIdx.x; idx < kBc * DV; idx += kThreads) {
    const int jj = idx / DV, e = idx % DV;
    vs[jj * (DV + 1) + e] = j0 + jj < j1 ? to_f(p.v[(kv0 + j0 + jj) * DV + e]) : 0.f;
    dv_acc[idx] = 0.f;
  }
  // Rows before i_start see no key of this tile (causal): skipped as the reference skips them.
  const int64_t i_start = c.causal && j0 > c.offset ? j0 - c.offset : 0;
  for (int64_t h = hkv * c.G; h < (hkv + 1) * c.G; ++h) {
    for (int64_t i0 = i_start; i0 < c.T; i0 += kWarps) {
      __syncthreads();  // the previous rows' terms are added (and the tiles are loaded)
      const int64_t i = i0 + warp;
      float* q_own = qs + warp * nm * D;
      float* g_own = gs + warp * DV;
      float* d_own = ds + warp * (nm + 1) * kBc;
      float dsk[2] = {0.f, 0.f}, prob = 0.f;
      const int64_t r = (b * c.Hq + h) * c.T + i;
      Row rw;
      if (i < c.T) rw = make_row(c, r);
      else rw.n = 0;
      // A row that sees no key of the tile adds exact zeros (its q and dO slots are zeroed too).
      const bool sees = rw.n > j0;
      for (int m = 0; m < nm; ++m)
        for (int e = lane; e < D; e += 32) q_own[m * D + e] = sees ? to_f(p.q[m][r * D + e]) : 0.f;
      for (int e = lane; e < DV; e += 32) g_own[e] = sees ? to_f(p.dout[r * DV + e]) : 0.f;
      __syncwarp();
      {
        if (sees) {
          const int64_t j = j0 + lane;
          if (j < j1 && j < rw.n) {
            const float* st = p.stats + r * kStats;
            const float gscale[2] = {1.f, -rw.lambda};
            float dp = 0.f;
            for (int e = 0; e < DV; ++e) dp = fmaf(g_own[e], vs[lane * (DV + 1) + e], dp);
            for (int m = 0; m < nm; ++m) {
              const AttnRowGrad<float> g = row_grad(p, st, m, r, rw.n);
              const float x = rw.ctrl.apply(score_dot(q_own + m * D, ks + (m * kBc + lane) * (D + 1), D, c.scale));
              const float pm = g.norm.prob(x);
              prob += gscale[m] * pm;
              const float dx = g.dx(j, gscale[m] * dp, pm, x);
              dsk[m] = dx * rw.ctrl.tau * c.scale;
            }
          }
        }
      }
      for (int m = 0; m < nm; ++m) d_own[m * kBc + lane] = dsk[m];
      d_own[nm * kBc + lane] = prob;
      __syncthreads();
      // Every thread adds the four rows' terms, in row order, to the entries it owns.
      const int64_t nrow = c.T - i0 < kWarps ? c.T - i0 : kWarps;
      for (int idx = threadIdx.x; idx < nm * kBc * D; idx += kThreads) {
        const int m = idx / (kBc * D), jj = (idx / D) % kBc, e = idx % D;
        float a = dk_acc[idx];
        for (int w = 0; w < nrow; ++w) a = fmaf(ds[(w * (nm + 1) + m) * kBc + jj], qs[(w * nm + m) * D + e], a);
        dk_acc[idx] = a;
      }
      for (int idx = threadIdx.x; idx < kBc * DV; idx += kThreads) {
        const int jj = idx / DV, e = idx % DV;
        float a = dv_acc[idx];
        for (int w = 0; w < nrow; ++w) a = fmaf(ds[(w * (nm + 1) + nm) * kBc + jj], gs[w * DV + e], a);
        dv_acc[idx] = a;
      }
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < nm * kBc * D; idx += kThreads) {
    const int m = idx / (kBc * D), jj = (idx / D) % kBc, e = idx % D;
    if (j0 + jj < j1 && p.dk[m]) p.dk[m][(kv0 + j0 + jj) * D + e] = from_f<T>(dk_acc[idx]);
  }
  for (int idx = threadIdx.x; idx < kBc * DV; idx += kThreads) {
    const int jj = idx / DV, e = idx % DV;
    if (j0 + jj < j1 && p.dv) p.dv[(kv0 + j0 + jj) * DV + e] = from_f<T>(dv_acc[idx]);
  }
}

template <int D, int DV>
size_t dq_smem(int nm) {
  return sizeof(float) * (size_t(nm) * kBc * (D + 1) + size_t(kBc) * (DV + 1) + size_t(kWarps) * nm * D +
                          size_t(kWarps) * DV + kWarps);
}

template <class T, int D, int DV>
__global__ void __launch_bounds__(kThreads) dq_kernel(BwdParams<T> p) {
  constexpr int QL = D / 32;
  const Common& c = p.c;
  const int nm = c.nmaps;
  extern __shared__ float smem[];
  float* ks = smem;                     // [nm][kBc][D + 1]
  float* vs = ks + nm * kBc * (D + 1);  // [kBc][DV + 1]
  float* qs = vs + kBc * (DV + 1);      // [kWarps][nm][D]
  float* gs = qs + kWarps * nm * D;     // [kWarps][DV]
  int* nvis = reinterpret_cast<int*>(gs + kWarps * DV);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ntq = (c.T + kWarps - 1) / kWarps;
  const int64_t bh = blockIdx.x / ntq, t = (blockIdx.x % ntq) * kWarps + warp;
  const bool active = t < c.T;
  Row rw;
  if (active) rw = make_row(c, bh * c.T + t);
  else rw.n = 0;
  float* q_own = qs + warp * nm * D;
  float* g_own = gs + warp * DV;
  if (active) {
    for (int m = 0; m < nm; ++m)
      for (int e = lane; e < D; e += 32) q_own[m * D + e] = to_f(p.q[m][rw.r * D + e]);
    for (int e = lane; e < DV; e += 32) g_own[e] = to_f(p.dout[rw.r * DV + e]);
  }
  if (lane == 0) nvis[warp] = int(rw.n);
  __syncthreads();
  int64_t nmax = 0;
  for (int w = 0; w < kWarps; ++w) nmax = nvis[w] > nmax ? int64_t(nvis[w]) : nmax;
  const int64_t kv0 = (bh / c.Hq * c.Hkv + (bh % c.Hq) / c.G) * c.S_cap;
  AttnRowGrad<float> g[2];
  const float gscale[2] = {1.f, -rw.lambda};
  if (active && rw.n > 0)
    for (int m = 0; m < nm; ++m) g[m] = row_grad(p, p.stats + rw.r * kStats, m, rw.r, rw.n);
  float acc[2][QL];
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int i = 0; i < QL; ++i) acc[m][i] = 0.f;
  for (int64_t j0 = 0; j0 < nmax; j0 += kBc) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < nm * kBc * D; idx += kThreads) {
      const int m = idx / (kBc * D), jj = (idx / D) % kBc, e = idx % D;
      ks[(m * kBc + jj) * (D + 1) + e] = j0 + jj < nmax ? to_f(p.k[m][(kv0 + j0 + jj) * D + e]) : 0.f;
    }
    for (int idx = threadIdx.x; idx < kBc * DV; idx += kThreads) {
      const int jj = idx / DV, e = idx % DV;
      vs[jj * (DV + 1) + e] = j0 + jj < nmax ? to_f(p.v[(kv0 + j0 + jj) * DV + e]) : 0.f;
    }
    __syncthreads();
    if (!active || j0 >= rw.n) continue;
    const int64_t j = j0 + lane, j1 = j0 + kBc < rw.n ? j0 + kBc : rw.n;
    float dxs[2] = {0.f, 0.f};
    if (j < j1) {
      float dp = 0.f;
      for (int e = 0; e < DV; ++e) dp = fmaf(g_own[e], vs[lane * (DV + 1) + e], dp);
      for (int m = 0; m < nm; ++m) {
        const float x = rw.ctrl.apply(score_dot(q_own + m * D, ks + (m * kBc + lane) * (D + 1), D, c.scale));
        const float pm = g[m].norm.prob(x);
        dxs[m] = g[m].dx(j, gscale[m] * dp, pm, x) * c.scale;
      }
    }
    const int cnt = int(j1 - j0);
    for (int jj = 0; jj < cnt; ++jj)
      for (int m = 0; m < nm; ++m) {
        const float dx = __shfl_sync(0xffffffffu, dxs[m], jj);
        const float* krow = ks + (m * kBc + jj) * (D + 1);
#pragma unroll
        for (int i = 0; i < QL; ++i) acc[m][i] = fmaf(dx, krow[lane + 32 * i], acc[m][i]);
      }
  }
  if (!active) return;
  const int64_t r = rw.r;
  float dtau = 0.f;
  for (int m = 0; m < nm; ++m)
#pragma unroll
    for (int i = 0; i < QL; ++i) {
      const int e = lane + 32 * i;
      if (p.dq[m]) p.dq[m][r * D + e] = from_f<T>(rw.ctrl.tau * acc[m][i]);
      dtau = fmaf(q_own[m * D + e], acc[m][i], dtau);
    }
  dtau = warp_sum(dtau);
  if (lane == 0) {
    if (p.dmul) p.dmul[r] = dtau;
    if (p.dadd) p.dadd[r] = p.stats[r * kStats + kDadd];
  }
}

__global__ void dlambda_kernel(const float* stats, float* dlam, int64_t ndlam, int64_t Hq, int64_t T, int64_t rows) {
  __shared__ float red[256];
  const int64_t li = blockIdx.x;
  float a = 0.f;
  // Head li's rows (ndlam = Hq) or every row (ndlam = 1), each thread a fixed strided subset.
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    if (ndlam == 1 || (r / T) % Hq == li) a += stats[r * kStats + kDlam];
  red[threadIdx.x] = a;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) dlam[li] = red[0];
}

template <class T, int D, int DV>
void launch_dims(Ctx& ctx, const BwdParams<T>& p) {
  const Common& c = p.c;
  const cudaStream_t s = stream_of(ctx);
  const int64_t rows = c.B * c.Hq * c.T;
  rows_kernel<T><<<dim3(unsigned((rows + kWarps - 1) / kWarps)), kThreads, 0, s>>>(p);
  CUDA_CHECK_LAUNCH();
  if (p.dk[0] || p.dk[1] || p.dv) {
    const size_t smem = dkdv_smem<D, DV>(c.nmaps);
    CUDA_CHECK(cudaFuncSetAttribute(dkdv_kernel<T, D, DV>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const int64_t blocks = c.B * c.Hkv * ((c.S + kBc - 1) / kBc);
    dkdv_kernel<T, D, DV><<<dim3(unsigned(blocks)), kThreads, smem, s>>>(p);
    CUDA_CHECK_LAUNCH();
  }
  if (p.dq[0] || p.dq[1] || p.dmul || p.dadd) {
    const size_t smem = dq_smem<D, DV>(c.nmaps);
    CUDA_CHECK(cudaFuncSetAttribute(dq_kernel<T, D, DV>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const int64_t blocks = c.B * c.Hq * ((c.T + kWarps - 1) / kWarps);
    dq_kernel<T, D, DV><<<dim3(unsigned(blocks)), kThreads, smem, s>>>(p);
    CUDA_CHECK_LAUNCH();
  }
  if (p.dlam) {
    dlambda_kernel<<<dim3(unsigned(p.ndlam)), 256, 0, s>>>(p.stats, p.dlam, p.ndlam, c.Hq, c.T, rows);
    CUDA_CHECK_LAUNCH();
  }
  // Cache slots no query sees.
  if (c.S < c.S_cap) {
    const size_t es = sizeof(T);
    for (int m = 0; m < c.nmaps; ++m)
      if (p.dk[m])
        CUDA_CHECK(cudaMemset2DAsync(p.dk[m] + c.S * D, size_t(c.S_cap) * D * es, 0, size_t(c.S_cap - c.S) * D * es,
                                     size_t(c.B * c.Hkv), s));
    if (p.dv)
      CUDA_CHECK(cudaMemset2DAsync(p.dv + c.S * DV, size_t(c.S_cap) * DV * es, 0, size_t(c.S_cap - c.S) * DV * es,
                                   size_t(c.B * c.Hkv), s));
  }
}

}  // namespace

template <class T>
void launch_backward(Ctx& ctx, const BwdParams<T>& p) {
  const int d = p.c.d, dv = p.c.dv;
  if (d == 64 && dv == 64) return launch_dims<T, 64, 64>(ctx, p);
  if (d == 64 && dv == 128) return launch_dims<T, 64, 128>(ctx, p);
  if (d == 128 && dv == 128) return launch_dims<T, 128, 128>(ctx, p);
  if (d == 128 && dv == 256) return launch_dims<T, 128, 256>(ctx, p);
  FAIL_WITH("attention backward (fused, CUDA): head dims d=", d, " dv=", dv, " are not built (the support matrix ",
            "admits d in {64, 128}, dv in {d, 2d})");
}

template void launch_backward<float>(Ctx&, const BwdParams<float>&);
template void launch_backward<bf16_t>(Ctx&, const BwdParams<bf16_t>&);

}  // namespace attnlab::cuda::fused
