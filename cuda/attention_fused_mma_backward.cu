// Fused attention backward on tensor cores (bf16; softmax, linear and ramp, per-row controllers;
// core/ops/attention_fused_path.h's predicate), FlashAttention-2's recomputation from the saved row
// statistics in the tiled reference's order (core/ops/attention_tiled_backward.cpp),
// deterministic: every gradient entry has one owner (a lane's accumulator register), sums run in
// a fixed order, no floating-point atomics.
//   1. rows:  one warp per row: Δ_sm = dO·O_sm → kDsm, Δ_lin = dO·O_lin → kDlin (the warp kernels'
//             workspace layout; ramp reads the parts from out_parts); linear / ramp also
//             m = x at row_min → kMin and 1/Z → kInvZ.
//   2. dQ:    one block per 64 query rows, a warp per 16, Q and dO in registers; the key tiles in
//             order: S = Q·Kᵀ, dP = dO·Vᵀ, dS = w_s·P_sm·(dP − Δ_sm) + w_l·(dP − Δ_lin)/Z (pure
//             linear needs no S), dQ += dS·K; then dQ·τ·s, dτ = s·q·(Σ dS·K), da = 0. The argmin
//             term of linear (AttnRowGrad::dx: the min key's score moves every P of the row),
//             c = w_l·(Σ_j dP_j − n·Δ_lin)/Z, is applied as dQ −= c·k_argmin and left in kSumG.
//   3. dK/dV: one block per (batch, kv head, 64-key tile), a warp per 16 keys; the query heads of
//             the group in order, their query tiles of 32 rows in order (from the first row that
//             sees the tile): Sᵀ = K·Qᵀ, Pᵀ, dPᵀ = V·dOᵀ, dSᵀ·τ (minus c at the row's argmin key),
//             dV += Pᵀ·dO, dK += dSᵀ·Q (Pᵀ, dSᵀ reused from the accumulators as A operands); then
//             dK·s. Keys in [S, S_cap) get zeros.
// Masked entries are exact zeros (selected, not multiplied), so cache rows past S never reach a sum.
#include "cuda/attention_fused_mma.cuh"

namespace attnlab::cuda::fused::mma_path {

namespace {

constexpr int kQTile = 32;  // query rows per step of the dK/dV blocks

// 1. Per row (one warp each): Δ = dO·O_part (fp32) per part → kDsm (softmax part), kDlin (linear
// part); linear / ramp also m = x at row_min (the score recomputed as a fp32 dot product) → kMin
// and 1/Z → kInvZ.
template <int MODE>
__global__ void __launch_bounds__(kMmaThreads) rows_kernel(BwdParams<bf16_t> p) {
  constexpr bool SM = MODE != int(AttnNorm::linear), LN = MODE != int(AttnNorm::softmax);
  const Common& c = p.c;
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kMmaWarps + threadIdx.x / 32;
  if (r >= c.B * c.Hq * c.T) return;
  const int dv = c.dv, d = c.d;
  auto dot_dout = [&](const bf16_t* o) {
    float a = 0.f;
    for (int e = lane; e < dv; e += 32) a = fmaf(to_f(p.dout[r * dv + e]), to_f(o[e]), a);
    return warp_sum(a);
  };
  // The parts: ramp saves [softmax, linear] per row in out_parts; the others have out only.
  const bf16_t* o_sm = SM && LN ? p.parts + (r * 2 + 0) * dv : p.out + r * dv;
  const bf16_t* o_ln = SM && LN ? p.parts + (r * 2 + 1) * dv : p.out + r * dv;
  float* st = p.stats + r * kStats;
  float dsm = 0.f, dln = 0.f, m = 0.f, iz = 0.f;
  if constexpr (SM) dsm = dot_dout(o_sm);
  if constexpr (LN) {
    dln = dot_dout(o_ln);
    const int64_t b = r / (c.Hq * c.T), h = (r / c.T) % c.Hq, t = r % c.T;
    const int64_t n = mma_visible(c, b, t);
    const int64_t imin = p.rmin[0][r];
    if (n > 0 && imin >= 0) {
      const bf16_t* kr = p.k[0] + ((b * c.Hkv + h / c.G) * c.S_cap + imin) * d;
      for (int e = lane; e < d; e += 32) m = fmaf(to_f(p.q[0][r * d + e]), to_f(kr[e]), m);
      m = warp_sum(m) * c.scale;
      m = fmaf(m, c.mul ? c.mul[r] : 1.f, c.add ? c.add[r] : 0.f);  // x = Sc·τ + a
      iz = 1.f / p.rsum[0][r];
    }
  }
  if (lane == 0) st[kDsm] = dsm, st[kDlin] = dln, st[kMin] = m, st[kInvZ] = iz;
}

template <int D>
constexpr size_t dkdv_smem() {
  return sizeof(bf16_t) * size_t(2 * kKeyTile + 2 * kQTile) * padded<D>() + sizeof(float) * 8 * kQTile +
         sizeof(int64_t) * 2 * kQTile;
}

// 3. dK, dV. Pᵀ = w_s·P_sm + w_l·P_lin with P_lin = (x − m + 1)/Z; dSᵀ = τ·(w_s·P_sm·(dPᵀ − Δ_sm)
// + w_l·(dPᵀ − Δ_lin)/Z − c at the row's argmin key), c the dQ kernel's argmin term (kSumG).
template <int D, int MODE>
__global__ void __launch_bounds__(kMmaThreads) mma_dkdv_kernel(BwdParams<bf16_t> p) {
#if ATTNLAB_MMA_ARCH_OK
  constexpr bool SM = MODE != int(AttnNorm::linear), LN = MODE != int(AttnNorm::softmax);
  constexpr int KS = D / 16, OT = D / 8, QT = kQTile / 8;
  const Common& c = p.c;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* ks = reinterpret_cast<bf16_t*>(smem_raw);  // [kKeyTile][padded]
  bf16_t* vs = ks + kKeyTile * padded<D>();           // [kKeyTile][padded]
  bf16_t* qs = vs + kKeyTile * padded<D>();           // [kQTile][padded]
  bf16_t* gs = qs + kQTile * padded<D>();             // [kQTile][padded] dO rows
  float* lse = reinterpret_cast<float*>(gs + kQTile * padded<D>());   // [kQTile] softmax: lse
  float* mm = lse + kQTile;                                            // [kQTile] linear: m
  float* dl = mm + kQTile;                                             // [kQTile] Δ_sm
  float* dn = dl + kQTile;                                             // [kQTile] Δ_lin
  float* iz = dn + kQTile;                                             // [kQTile] linear: 1/Z
  float* cc = iz + kQTile;                                             // [kQTile] linear: argmin term c
  float* ta = cc + kQTile;                                             // [kQTile] controller τ
  float* ad = ta + kQTile;                                             // [kQTile] controller a
  int64_t* nv = reinterpret_cast<int64_t*>(ad + kQTile);               // [kQTile] visible keys
  int64_t* im = nv + kQTile;                                           // [kQTile] linear: argmin key
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = attnlab::mma::lane_group(lane), qd = attnlab::mma::lane_in_group(lane);
  const int64_t ntk = (c.S_cap + kKeyTile - 1) / kKeyTile;
  const int64_t bk = blockIdx.x / ntk, j0 = (blockIdx.x % ntk) * kKeyTile;
  const int64_t b = bk / c.Hkv, hkv = bk % c.Hkv, kv0 = bk * c.S_cap;
  const int64_t jw = j0 + warp * 16;  // this warp's first key

  load_tile_async<D>(ks, p.k[0] + kv0 * D, j0, kKeyTile, c.S);  // keys ≥ S: zeros, never visible
  load_tile_async<D>(vs, p.v + kv0 * D, j0, kKeyTile, c.S);
  cp_async_commit();

  float dk[OT][4], dv[OT][4];
#pragma unroll
  for (int i = 0; i < OT; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;
  const float ws = tiled_softmax_weight(MODE, c.alpha), wln = tiled_linear_weight(MODE, c.alpha);
  // Rows before i_start see no key of this tile (causal: key j needs t + offset ≥ j).
  const int64_t i_start = c.causal && j0 > c.offset ? j0 - c.offset : 0;
  const bool any_key = j0 < c.S && (!c.klen || c.klen[b] > j0);

  for (int64_t h = hkv * c.G; any_key && h < (hkv + 1) * c.G; ++h) {
    const int64_t row0 = (b * c.Hq + h) * c.T;
    for (int64_t i0 = i_start; i0 < c.T; i0 += kQTile) {
      __syncthreads();  // the previous query tile is consumed
      load_tile_async<D>(qs, p.q[0] + row0 * D, i0, kQTile, c.T);
      load_tile_async<D>(gs, p.dout + row0 * D, i0, kQTile, c.T);
      cp_async_commit();
      if (threadIdx.x < kQTile) {
        const int64_t i = i0 + threadIdx.x;
        const bool in = i < c.T;
        const float* st = p.stats + (row0 + (in ? i : 0)) * kStats;
        lse[threadIdx.x] = in && SM ? p.lse[0][row0 + i] : 0.f;
        mm[threadIdx.x] = in ? st[kMin] : 0.f;
        iz[threadIdx.x] = in ? st[kInvZ] : 0.f;
        cc[threadIdx.x] = in && LN ? st[kSumG] : 0.f;
        im[threadIdx.x] = in && LN ? int64_t(p.rmin[0][row0 + i]) : -1;
        dl[threadIdx.x] = in ? st[kDsm] : 0.f;
        dn[threadIdx.x] = in ? st[kDlin] : 0.f;
        ta[threadIdx.x] = in && c.mul ? c.mul[row0 + i] : 1.f;
        ad[threadIdx.x] = in && c.add ? c.add[row0 + i] : 0.f;
        nv[threadIdx.x] = mma_visible(c, b, i);
      }
      cp_async_wait<0>();
      __syncthreads();
      const int64_t i_last = i0 + kQTile - 1 < c.T ? i0 + kQTile - 1 : c.T - 1;
      if (jw >= mma_visible(c, b, i_last)) continue;  // no row of the tile sees this warp's keys

      // Sᵀ (16 keys × 32 queries) and dPᵀ = V·dOᵀ.
      float st[QT][4], dpt[QT][4];
#pragma unroll
      for (int i = 0; i < QT; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) st[i][e] = dpt[i][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        uint32_t ka[4], va[4];
        load_a<D>(ka, ks, warp * 16, kk * 16, lane);
        load_a<D>(va, vs, warp * 16, kk * 16, lane);
#pragma unroll
        for (int np = 0; np < QT / 2; ++np) {
          uint32_t qb[4], gb[4];
          load_b<D>(qb, qs, np * 16, kk * 16, lane);
          load_b<D>(gb, gs, np * 16, kk * 16, lane);
          mma_bf16(st[2 * np], ka, qb[0], qb[1]);
          mma_bf16(st[2 * np + 1], ka, qb[2], qb[3]);
          mma_bf16(dpt[2 * np], va, gb[0], gb[1]);
          mma_bf16(dpt[2 * np + 1], va, gb[2], gb[3]);
        }
      }
      // Pᵀ in st, dSᵀ in dpt (row = key jw + g (+8), column = query).
#pragma unroll
      for (int nt = 0; nt < QT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const attnlab::mma::RowCol rc = c_elem(lane, e);
          const int qi = nt * 8 + rc.col;
          const int64_t key = jw + rc.row;
          const bool vis = key < nv[qi];
          const float x = fmaf(st[nt][e] * c.scale, ta[qi], ad[qi]);
          // dSᵀ carries τ (dSc = dx·τ); the scale s is applied once at the end.
          float pr = 0.f, dx = 0.f;
          if constexpr (SM) {
            const float ps = exp2f((x - lse[qi]) * kLog2e);
            pr = ws * ps, dx = ws * ps * (dpt[nt][e] - dl[qi]);
          }
          if constexpr (LN) {
            pr = fmaf(wln * (x - mm[qi] + 1.f), iz[qi], pr);
            dx = fmaf(wln * (dpt[nt][e] - dn[qi]), iz[qi], dx) - (key == im[qi] ? cc[qi] : 0.f);
          }
          st[nt][e] = vis ? pr : 0.f;
          dpt[nt][e] = vis ? dx * ta[qi] : 0.f;
        }
      // dV += Pᵀ·dO, dK += dSᵀ·Q (k = queries, two k16 blocks).
#pragma unroll
      for (int kb = 0; kb < kQTile / 16; ++kb) {
        uint32_t pa[4], da[4];
        c_to_a(pa, st[2 * kb], st[2 * kb + 1]);
        c_to_a(da, dpt[2 * kb], dpt[2 * kb + 1]);
#pragma unroll
        for (int np = 0; np < OT / 2; ++np) {
          uint32_t gb[4], qb[4];
          load_bt<D>(gb, gs, kb * 16, np * 16, lane);
          load_bt<D>(qb, qs, kb * 16, np * 16, lane);
          mma_bf16(dv[2 * np], pa, gb[0], gb[1]);
          mma_bf16(dv[2 * np + 1], pa, gb[2], gb[3]);
          mma_bf16(dk[2 * np], da, qb[0], qb[1]);
          mma_bf16(dk[2 * np + 1], da, qb[2], qb[3]);
        }
      }
    }
  }
  cp_async_wait<0>();  // a block that skipped every row still has its K / V copies in flight
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int64_t j = jw + g + 8 * hf;
    if (j >= c.S_cap) continue;
    const int64_t at = (kv0 + j) * D;
#pragma unroll
    for (int ot = 0; ot < OT; ++ot) {
      const int col = ot * 8 + 2 * qd;
      if (p.dk[0]) store_bf16x2(p.dk[0] + at + col, dk[ot][2 * hf] * c.scale, dk[ot][2 * hf + 1] * c.scale);
      if (p.dv) store_bf16x2(p.dv + at + col, dv[ot][2 * hf], dv[ot][2 * hf + 1]);
    }
  }
#else
  __trap();
#endif
}

template <int D>
constexpr size_t dq_smem() {
  return sizeof(bf16_t) * size_t(2 * kBlockRows + 2 * kKeyTile) * padded<D>();
}

// 2. dQ. dS = w_s·P_sm·(dP − Δ_sm) + w_l·(dP − Δ_lin)/Z (linear needs no scores); the row's
// Σ_j g_j = Σ_{j<n} dP_j is summed on the way, and at the end the argmin term
// c = w_l·(Σ g − n·Δ_lin)/Z enters as dQ −= c·k_argmin (and goes to kSumG for the dK kernel,
// which runs after this one).
template <int D, int MODE>
__global__ void __launch_bounds__(kMmaThreads) mma_dq_kernel(BwdParams<bf16_t> p) {
#if ATTNLAB_MMA_ARCH_OK
  constexpr bool SM = MODE != int(AttnNorm::linear), LN = MODE != int(AttnNorm::softmax);
  constexpr bool LIN = !SM;  // pure linear: no scores at all
  constexpr int KS = D / 16, NT = kKeyTile / 8, OT = D / 8;
  const Common& c = p.c;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* qs = reinterpret_cast<bf16_t*>(smem_raw);  // [kBlockRows][padded]
  bf16_t* gs = qs + kBlockRows * padded<D>();         // [kBlockRows][padded] dO
  bf16_t* ks = gs + kBlockRows * padded<D>();         // [kKeyTile][padded]
  bf16_t* vs = ks + kKeyTile * padded<D>();           // [kKeyTile][padded]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = attnlab::mma::lane_group(lane), qd = attnlab::mma::lane_in_group(lane);
  const int64_t ntq = (c.T + kBlockRows - 1) / kBlockRows;
  const int64_t bh = blockIdx.x / ntq, t0 = (blockIdx.x % ntq) * kBlockRows;
  const int64_t b = bh / c.Hq, h = bh % c.Hq;
  const int64_t row0 = bh * c.T, kv0 = (b * c.Hkv + h / c.G) * c.S_cap;

  load_tile_async<D>(qs, p.q[0] + row0 * D, t0, kBlockRows, c.T);
  load_tile_async<D>(gs, p.dout + row0 * D, t0, kBlockRows, c.T);
  cp_async_commit();
  const int64_t tw = t0 + warp * 16;
  const int64_t tr[2] = {tw + g, tw + g + 8};
  const int64_t n[2] = {mma_visible(c, b, tr[0]), mma_visible(c, b, tr[1])};
  float lse[2], dl[2], dn[2], mm[2], iz[2], tau[2], add[2], sum_g[2] = {0.f, 0.f};
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const bool in = tr[hf] < c.T;
    const float* st = p.stats + (row0 + (in ? tr[hf] : 0)) * kStats;
    lse[hf] = in && SM ? p.lse[0][row0 + tr[hf]] : 0.f;
    mm[hf] = in ? st[kMin] : 0.f;
    iz[hf] = in ? st[kInvZ] : 0.f;
    dl[hf] = in ? st[kDsm] : 0.f;
    dn[hf] = in ? st[kDlin] : 0.f;
    tau[hf] = in && c.mul ? c.mul[row0 + tr[hf]] : 1.f;
    add[hf] = in && c.add ? c.add[row0 + tr[hf]] : 0.f;
  }
  const int64_t warp_n = tw < c.T ? mma_visible(c, b, tw + 15 < c.T ? tw + 15 : c.T - 1) : 0;
  const int64_t block_n = mma_visible(c, b, t0 + kBlockRows - 1 < c.T ? t0 + kBlockRows - 1 : c.T - 1);
  const float ws = tiled_softmax_weight(MODE, c.alpha), wln = tiled_linear_weight(MODE, c.alpha);
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qa[LIN ? 1 : KS][4], ga[KS][4];  // linear's dQ needs no scores, hence no Q fragments
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    if constexpr (!LIN) load_a<D>(qa[kk], qs, warp * 16, kk * 16, lane);
    load_a<D>(ga[kk], gs, warp * 16, kk * 16, lane);
  }
  float dq[OT][4];
#pragma unroll
  for (int i = 0; i < OT; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
  for (int64_t j0 = 0; j0 < block_n; j0 += kKeyTile) {
    __syncthreads();
    load_tile_async<D>(ks, p.k[0] + kv0 * D, j0, kKeyTile, block_n);
    load_tile_async<D>(vs, p.v + kv0 * D, j0, kKeyTile, block_n);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (j0 >= warp_n) continue;
    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[i][e] = dp[i][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t kb[4], vb[4];
        load_b<D>(vb, vs, np * 16, kk * 16, lane);
        if constexpr (!LIN) {
          load_b<D>(kb, ks, np * 16, kk * 16, lane);
          mma_bf16(s[2 * np], qa[LIN ? 0 : kk], kb[0], kb[1]);
          mma_bf16(s[2 * np + 1], qa[LIN ? 0 : kk], kb[2], kb[3]);
        }
        mma_bf16(dp[2 * np], ga[kk], vb[0], vb[1]);
        mma_bf16(dp[2 * np + 1], ga[kk], vb[2], vb[3]);
      }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hf = e >> 1;
        const bool vis = j0 + nt * 8 + c_elem(lane, e).col < n[hf];
        float dx = 0.f;
        if constexpr (SM) {
          const float x = fmaf(s[nt][e] * c.scale, tau[hf], add[hf]);
          dx = ws * exp2f((x - lse[hf]) * kLog2e) * (dp[nt][e] - dl[hf]);
        }
        if constexpr (LN) {
          sum_g[hf] += vis ? dp[nt][e] : 0.f;
          dx = fmaf(wln * (dp[nt][e] - dn[hf]), iz[hf], dx);
        }
        dp[nt][e] = vis ? dx : 0.f;
      }
    // dQ += dS·K (k = keys: four k16 blocks; K rows are B's rows: .trans).
#pragma unroll
    for (int kb = 0; kb < kKeyTile / 16; ++kb) {
      uint32_t da[4];
      c_to_a(da, dp[2 * kb], dp[2 * kb + 1]);
#pragma unroll
      for (int np = 0; np < OT / 2; ++np) {
        uint32_t kb2[4];
        load_bt<D>(kb2, ks, kb * 16, np * 16, lane);
        mma_bf16(dq[2 * np], da, kb2[0], kb2[1]);
        mma_bf16(dq[2 * np + 1], da, kb2[2], kb2[3]);
      }
    }
  }
  // Rows: linear's argmin term, then dτ = Σ_j dx_j·Sc_j = s·q·acc (acc = Σ_j dx_j·k_j, the
  // accumulators before τ and s), da = Σ_j dx_j = 0 for a normalising map, dQ = τ·s·acc. The quad
  // shuffles run on every lane (no exit before them).
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const bool in = tr[hf] < c.T;
    const int64_t r = row0 + tr[hf];
    if constexpr (LN) {
      const float sg = quad_sum(sum_g[hf]);
      const float cr = in && n[hf] > 0 ? wln * (sg - float(n[hf]) * dn[hf]) * iz[hf] : 0.f;
      if (in && qd == 0) p.stats[r * kStats + kSumG] = cr;
      if (in && n[hf] > 0) {
        const bf16_t* kr = p.k[0] + (kv0 + p.rmin[0][r]) * D;
#pragma unroll
        for (int ot = 0; ot < OT; ++ot) {
          const int col = ot * 8 + 2 * qd;
          dq[ot][2 * hf] = fmaf(-cr, to_f(kr[col]), dq[ot][2 * hf]);
          dq[ot][2 * hf + 1] = fmaf(-cr, to_f(kr[col + 1]), dq[ot][2 * hf + 1]);
        }
      }
    }
    if (p.dmul) {
      const bf16_t* qrow = qs + (warp * 16 + g + 8 * hf) * padded<D>();
      float part = 0.f;
#pragma unroll
      for (int ot = 0; ot < OT; ++ot) {
        const int col = ot * 8 + 2 * qd;
        part = fmaf(to_f(qrow[col]), dq[ot][2 * hf], part);
        part = fmaf(to_f(qrow[col + 1]), dq[ot][2 * hf + 1], part);
      }
      const float dtau = quad_sum(part) * c.scale;
      if (in && qd == 0) p.dmul[r] = dtau;
    }
    if (!in) continue;
    if (p.dadd && qd == 0) p.dadd[r] = 0.f;
    if (!p.dq[0]) continue;
    bf16_t* dst = p.dq[0] + r * D;
    const float f = c.scale * tau[hf];
#pragma unroll
    for (int ot = 0; ot < OT; ++ot) store_bf16x2(dst + ot * 8 + 2 * qd, dq[ot][2 * hf] * f, dq[ot][2 * hf + 1] * f);
  }
#else
  __trap();
#endif
}

template <int D, int MODE>
void launch(Ctx& ctx, const BwdParams<bf16_t>& p) {
  constexpr bool LN = MODE != int(AttnNorm::softmax);
  const Common& c = p.c;
  const cudaStream_t st = stream_of(ctx);
  const int64_t rows = c.B * c.Hq * c.T;
  rows_kernel<MODE><<<dim3(unsigned((rows + kMmaWarps - 1) / kMmaWarps)), kMmaThreads, 0, st>>>(p);
  CUDA_CHECK_LAUNCH();
  // Linear's dK needs the argmin terms the dQ kernel computes, and dτ / da come from it: it runs
  // first, and whenever one of them is asked for, even without dQ.
  if (p.dq[0] || (LN && p.dk[0]) || p.dmul || p.dadd) {
    constexpr size_t smem = dq_smem<D>();
    CUDA_CHECK(cudaFuncSetAttribute(mma_dq_kernel<D, MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const int64_t blocks = c.B * c.Hq * ((c.T + kBlockRows - 1) / kBlockRows);
    mma_dq_kernel<D, MODE><<<dim3(unsigned(blocks)), kMmaThreads, smem, st>>>(p);
    CUDA_CHECK_LAUNCH();
  }
  if (p.dk[0] || p.dv) {
    constexpr size_t smem = dkdv_smem<D>();
    CUDA_CHECK(cudaFuncSetAttribute(mma_dkdv_kernel<D, MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const int64_t blocks = c.B * c.Hkv * ((c.S_cap + kKeyTile - 1) / kKeyTile);
    mma_dkdv_kernel<D, MODE><<<dim3(unsigned(blocks)), kMmaThreads, smem, st>>>(p);
    CUDA_CHECK_LAUNCH();
  }
}

template <int D>
void launch_norm(Ctx& ctx, const BwdParams<bf16_t>& p) {
  if (p.c.mode == int(AttnNorm::softmax)) return launch<D, int(AttnNorm::softmax)>(ctx, p);
  if (p.c.mode == int(AttnNorm::linear)) return launch<D, int(AttnNorm::linear)>(ctx, p);
  if (p.c.mode == int(AttnNorm::ramp)) {
    CHECK(p.parts && p.nparts == 2, "attention backward (fused, CUDA tensor cores): ramp needs the forward's ",
          "out_parts [B, Hq, T, 2*dv]; pass AttentionTiledBackwardArgs::out_parts");
    return launch<D, int(AttnNorm::ramp)>(ctx, p);
  }
  FAIL_WITH("attention backward (fused, CUDA tensor cores): normalisation ", attn_norm_name(AttnNorm(p.c.mode)),
            " reached the mma kernels, which run softmax, linear and ramp; core/ops/attention_fused_path.cpp's "
            "predicate should have sent this call to the warp kernels");
}

}  // namespace

void launch_mma_backward(Ctx& ctx, const BwdParams<bf16_t>& p) {
  check_aligned16(p.q[0], "q"), check_aligned16(p.k[0], "k"), check_aligned16(p.v, "v");
  check_aligned16(p.dout, "dout");
  for (const void* g : {static_cast<const void*>(p.dq[0]), static_cast<const void*>(p.dk[0]),
                        static_cast<const void*>(p.dv)})
    if (g) check_aligned16(g, "dq/dk/dv");
  if (p.c.d == 64 && p.c.dv == 64) return launch_norm<64>(ctx, p);
  if (p.c.d == 128 && p.c.dv == 128) return launch_norm<128>(ctx, p);
  FAIL_WITH("attention backward (fused, CUDA tensor cores): head dims d=", p.c.d, " dv=", p.c.dv,
            " reached the mma kernels, which take d = dv in {64, 128}; core/ops/attention_fused_path.cpp's "
            "predicate should have sent this call to the warp kernels");
}

}  // namespace attnlab::cuda::fused::mma_path
