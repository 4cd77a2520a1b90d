// Fused attention forward on tensor cores (bf16, softmax, linear and ramp; the calls
// core/ops/attention_fused_path.h's predicate admits). One block = 64 query rows of one (batch,
// head), 4 warps of 16 rows each; the block walks the key tiles [j0, j0 + 64) up to the visible
// keys of its last row:
//   Q (16 × d per warp) sits in registers as A fragments for the whole walk (linear at d = 128 and
//   ramp reload them from shared memory per tile: their accumulators need the registers);
//   K and V tiles are copied to shared memory (cp.async, rows padded by 16 bytes);
//   S = Q·Kᵀ on mma.sync m16n8k16 (K rows are B's columns: ldmatrix without .trans);
//   softmax: the masked, scaled scores update each row's running max M and sum ℓ on the
//   accumulators themselves (a row lives in the 4 lanes of a quad: max by two xor shuffles; ℓ
//   stays per lane and is summed once at the end), O is rescaled by exp(M_old − M_new) when M moves;
//   P (fp32 accumulators, rounded to bf16) is reused in place as the A operand of O += P·V
//   (V rows are B's rows: ldmatrix .trans).
//   linear: one pass as the tiled reference (core/ops/attention_tiled.h), but with the running
//   minimum m as the shift instead of the first key's score: the bf16 A operand is x − m + 1 ∈
//   [1, range + 1] (well conditioned), and when m drops by δ the sums move by δ per key already
//   in them (O += δ·Σv, Z += δ·count; Σv over visible keys comes from a second mma with the 0/1
//   mask as A). No rescaling, no second pass.
//   ramp: both parts from the same scores, O = (1 − α)·O_softmax + α·O_linear, and both parts saved
//   in out_parts (the backward's two Δ).
// Per-row controllers: x = Sc·τ + a on the accumulators before either normalisation.
// Saved: softmax / ramp lse = M + log ℓ (natural log, 0 for a row with no visible key, whose O is
// 0); linear / ramp row_sum = Z and row_min (first index of the minimum score, −1 with no key); row_min also
// for softmax when the caller keeps it — what the warp kernel saves, so either backward reads them.
#include "cuda/attention_fused_mma.cuh"

namespace attnlab::cuda::fused::mma_path {

namespace {

template <int D>
constexpr size_t forward_smem() {
  return sizeof(bf16_t) * size_t(kBlockRows + 2 * kKeyTile) * padded<D>();
}

// MODE: AttnNorm::softmax, linear or ramp (both parts, mixed at the end).
template <int D, int MODE>
__global__ void __launch_bounds__(kMmaThreads) mma_forward_kernel(FwdParams<bf16_t> p) {
#if ATTNLAB_MMA_ARCH_OK
  constexpr bool SM = MODE != int(AttnNorm::linear);   // a softmax part
  constexpr bool LN = MODE != int(AttnNorm::softmax);  // a linear part
  // Q fragments stay in registers unless the linear part's two accumulator sets need the room
  // (linear at d = 128, ramp): then they are reloaded from shared memory per tile.
  constexpr bool QREG = !LN || (!SM && D == 64);
  constexpr int KS = D / 16;          // k16 slices of the head dim
  constexpr int NT = kKeyTile / 8;    // n8 score tiles per key tile
  constexpr int OT = D / 8;           // n8 output tiles
  const Common& c = p.c;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* qs = reinterpret_cast<bf16_t*>(smem_raw);  // [kBlockRows][padded]
  bf16_t* ks = qs + kBlockRows * padded<D>();         // [kKeyTile][padded]
  bf16_t* vs = ks + kKeyTile * padded<D>();           // [kKeyTile][padded]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ntq = (c.T + kBlockRows - 1) / kBlockRows;
  const int64_t bh = blockIdx.x / ntq, t0 = (blockIdx.x % ntq) * kBlockRows;
  const int64_t b = bh / c.Hq, h = bh % c.Hq;
  const int64_t row0 = bh * c.T;                            // global row of query 0 of (b, h)
  const int64_t kv0 = (b * c.Hkv + h / c.G) * c.S_cap;      // row of key 0 of the kv head

  load_tile_async<D>(qs, p.q[0] + row0 * D, t0, kBlockRows, c.T);
  cp_async_commit();

  // This lane's two rows (accumulator rows g and g + 8 of the warp's 16), their visible keys; the
  // warp's and the block's furthest key (visible keys grow with t: its last row has the most).
  const int g = attnlab::mma::lane_group(lane), qd = attnlab::mma::lane_in_group(lane);
  const int64_t tw = t0 + warp * 16;
  const int64_t tr[2] = {tw + g, tw + g + 8};
  const int64_t n[2] = {mma_visible(c, b, tr[0]), mma_visible(c, b, tr[1])};
  const int64_t warp_n = tw < c.T ? mma_visible(c, b, tw + 15 < c.T ? tw + 15 : c.T - 1) : 0;
  const int64_t block_n = mma_visible(c, b, t0 + kBlockRows - 1 < c.T ? t0 + kBlockRows - 1 : c.T - 1);
  // Per-row controllers (METHODS §4.3): x = Sc·τ + a with Sc = s·q·k; identity when absent.
  float tau[2] = {1.f, 1.f}, add[2] = {0.f, 0.f};
#pragma unroll
  for (int hf = 0; hf < 2; ++hf)
    if (tr[hf] < c.T) {
      if (c.mul) tau[hf] = c.mul[row0 + tr[hf]];
      if (c.add) add[hf] = c.add[row0 + tr[hf]];
    }

  cp_async_wait<0>();
  __syncthreads();
  uint32_t qa[QREG ? KS : 1][4];
  if constexpr (QREG) {
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) load_a<D>(qa[kk], qs, warp * 16, kk * 16, lane);
  }

  // softmax part: os = Σ e·v with e = exp(x − M), M the running max, l this lane's part of Σ e;
  //   rescaled by exp(M_old − M_new) when M moves.
  // linear part: ow = Σ (x − m + 1)·v with m the running min, o1 = Σ v over visible keys, z this
  //   lane's part of Σ (x − m + 1), cnt its visible keys; when m drops by δ every sum gains δ per
  //   key already in it: ow += δ·o1, z += δ·cnt (exact shift, no rescale).
  float os[SM ? OT : 1][4], ow[LN ? OT : 1][4], o1[LN ? OT : 1][4];
#pragma unroll
  for (int i = 0; i < OT; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if constexpr (SM) os[i][e] = 0.f;
      if constexpr (LN) ow[i][e] = o1[i][e] = 0.f;
    }
  float mx[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float mr[2] = {INFINITY, INFINITY}, z[2] = {0.f, 0.f}, cnt[2] = {0.f, 0.f};
  float mn[2] = {INFINITY, INFINITY};  // the first minimum of x (natural units) and its index
  int64_t imin[2] = {-1, -1};
  const bool want_min = LN || p.rmin[0] != nullptr;  // the argmin costs a compare per score

  for (int64_t j0 = 0; j0 < block_n; j0 += kKeyTile) {
    __syncthreads();  // the previous K / V tiles are consumed
    load_tile_async<D>(ks, p.k[0] + kv0 * D, j0, kKeyTile, block_n);
    load_tile_async<D>(vs, p.v + kv0 * D, j0, kKeyTile, block_n);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (j0 >= warp_n) continue;  // no row of this warp sees a key of the tile

    float s[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
      uint32_t qf[4];
      if constexpr (!QREG) load_a<D>(qf, qs, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t kb[4];
        load_b<D>(kb, ks, np * 16, kk * 16, lane);
        if constexpr (QREG) {
          mma_bf16(s[2 * np], qa[kk], kb[0], kb[1]);
          mma_bf16(s[2 * np + 1], qa[kk], kb[2], kb[3]);
        } else {
          mma_bf16(s[2 * np], qf, kb[0], kb[1]);
          mma_bf16(s[2 * np + 1], qf, kb[2], kb[3]);
        }
      }
    }

    // x = Sc·τ + a (natural units) back into s; the first minimum; the tile's row max and min
    // over visible keys (key j visible to row t iff j < n_t).
    float tmax[2] = {-INFINITY, -INFINITY}, tmin[2] = {INFINITY, INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int hf = i >> 1;
        const int64_t j = j0 + nt * 8 + c_elem(lane, i).col;
        const bool vis = j < n[hf];
        const float x = fmaf(s[nt][i] * c.scale, tau[hf], add[hf]);
        s[nt][i] = x;
        if (want_min && vis && (x < mn[hf] || (x == mn[hf] && j < imin[hf]))) mn[hf] = x, imin[hf] = j;
        if (vis) tmax[hf] = fmaxf(tmax[hf], x), tmin[hf] = fminf(tmin[hf], x);
      }
    float base[2];  // softmax: the max the exponentials are taken against (0 before any key)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      if constexpr (SM) {
        const attnlab::mma::MaxStep st = attnlab::mma::max_step(mx[hf], quad_max(tmax[hf]));
        base[hf] = st.base;
        l[hf] *= st.factor;
#pragma unroll
        for (int ot = 0; ot < OT; ++ot) os[ot][2 * hf] *= st.factor, os[ot][2 * hf + 1] *= st.factor;
        mx[hf] = st.m;
      }
      if constexpr (LN) {
        const attnlab::mma::MinStep st = attnlab::mma::min_step(mr[hf], quad_min(tmin[hf]));
        if (st.delta > 0.f) {
          z[hf] = fmaf(st.delta, cnt[hf], z[hf]);
#pragma unroll
          for (int ot = 0; ot < OT; ++ot) {
            ow[ot][2 * hf] = fmaf(st.delta, o1[ot][2 * hf], ow[ot][2 * hf]);
            ow[ot][2 * hf + 1] = fmaf(st.delta, o1[ot][2 * hf + 1], ow[ot][2 * hf + 1]);
          }
        }
        mr[hf] = st.m;
      }
    }

    // Per k16 block kb of keys (score tiles 2kb, 2kb + 1), the weights as A fragments, straight
    // from the accumulators: softmax e (masked: 0); linear x − m + 1 and the 0/1 mask. Then
    // O += weights·V (V rows are B's rows: .trans).
#pragma unroll
    for (int kb = 0; kb < kKeyTile / 16; ++kb) {
      // A register rr packs score tile 2kb + rr / 2, elements 2(rr % 2) and 2(rr % 2) + 1: row half
      // rr % 2, adjacent keys (c_to_a's order, attention_mma_layout.h); packed as they are made.
      uint32_t pa[4], la[4], ma[4];
#pragma unroll
      for (int rr = 0; rr < 4; ++rr) {
        const int u = rr >> 1, e0 = 2 * (rr & 1), hf = rr & 1;
        const int64_t j = j0 + (2 * kb + u) * 8 + c_elem(lane, e0).col;
        const bool v0 = j < n[hf], v1 = j + 1 < n[hf];
        const float x0 = s[2 * kb + u][e0], x1 = s[2 * kb + u][e0 + 1];
        if constexpr (SM) {
          const float a0 = attnlab::mma::softmax_weight(x0, base[hf], v0);
          const float a1 = attnlab::mma::softmax_weight(x1, base[hf], v1);
          l[hf] += a0 + a1;
          pa[rr] = pack_bf16(a0, a1);
        }
        if constexpr (LN) {
          const float a0 = attnlab::mma::linear_weight(x0, mr[hf], v0);
          const float a1 = attnlab::mma::linear_weight(x1, mr[hf], v1);
          z[hf] += a0 + a1;
          cnt[hf] += (v0 ? 1.f : 0.f) + (v1 ? 1.f : 0.f);
          la[rr] = pack_bf16(a0, a1);
          ma[rr] = pack_bf16(v0 ? 1.f : 0.f, v1 ? 1.f : 0.f);
        }
      }
#pragma unroll
      for (int np = 0; np < OT / 2; ++np) {
        uint32_t vb[4];
        load_bt<D>(vb, vs, kb * 16, np * 16, lane);
        if constexpr (SM) {
          mma_bf16(os[2 * np], pa, vb[0], vb[1]);
          mma_bf16(os[2 * np + 1], pa, vb[2], vb[3]);
        }
        if constexpr (LN) {
          mma_bf16(ow[2 * np], la, vb[0], vb[1]);
          mma_bf16(ow[2 * np + 1], la, vb[2], vb[3]);
          mma_bf16(o1[2 * np], ma, vb[0], vb[1]);
          mma_bf16(o1[2 * np + 1], ma, vb[2], vb[3]);
        }
      }
    }
  }

  // Rows: the normalisers over the quad (ℓ, Z), the first minimum over the quad, then the parts
  // O_sm = os/ℓ and O_lin = ow/Z, O = w_s·O_sm + w_l·O_lin (ramp also saves both parts), and the
  // statistics.
  const float ws = tiled_softmax_weight(MODE, c.alpha), wln = tiled_linear_weight(MODE, c.alpha);
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const float lq = SM ? quad_sum(l[hf]) : 0.f, zq = LN ? quad_sum(z[hf]) : 0.f;
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      const float w = __shfl_xor_sync(0xffffffffu, mn[hf], off);
      const int64_t jw = __shfl_xor_sync(0xffffffffu, imin[hf], off);
      if (jw >= 0 && (imin[hf] < 0 || w < mn[hf] || (w == mn[hf] && jw < imin[hf]))) mn[hf] = w, imin[hf] = jw;
    }
    if (tr[hf] >= c.T) continue;
    const int64_t r = row0 + tr[hf];
    const float inv_l = lq > 0.f ? 1.f / lq : 0.f, inv_z = zq > 0.f ? 1.f / zq : 0.f;
#pragma unroll
    for (int ot = 0; ot < OT; ++ot) {
      const int col = ot * 8 + 2 * qd;
      float sm0 = 0.f, sm1 = 0.f, ln0 = 0.f, ln1 = 0.f;
      if constexpr (SM) sm0 = os[ot][2 * hf] * inv_l, sm1 = os[ot][2 * hf + 1] * inv_l;
      if constexpr (LN) ln0 = ow[ot][2 * hf] * inv_z, ln1 = ow[ot][2 * hf + 1] * inv_z;
      store_bf16x2(p.out + r * D + col, ws * sm0 + wln * ln0, ws * sm1 + wln * ln1);
      if constexpr (SM && LN) {
        store_bf16x2(p.parts + (r * 2 + 0) * D + col, sm0, sm1);
        store_bf16x2(p.parts + (r * 2 + 1) * D + col, ln0, ln1);
      }
    }
    if (qd == 0) {
      if (p.lse[0]) p.lse[0][r] = SM ? attnlab::mma::softmax_lse(mx[hf], lq, n[hf] > 0) : 0.f;
      if (p.rmin[0]) p.rmin[0][r] = int32_t(imin[hf]);
      if (p.rsum[0]) p.rsum[0][r] = LN && n[hf] > 0 ? zq : 0.f;
    }
  }
#else
  __trap();
#endif
}

template <int D, int MODE>
void launch(Ctx& ctx, const FwdParams<bf16_t>& p) {
  constexpr size_t smem = forward_smem<D>();
  CUDA_CHECK(cudaFuncSetAttribute(mma_forward_kernel<D, MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int64_t blocks = p.c.B * p.c.Hq * ((p.c.T + kBlockRows - 1) / kBlockRows);
  mma_forward_kernel<D, MODE><<<dim3(unsigned(blocks)), kMmaThreads, smem, stream_of(ctx)>>>(p);
  CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_norm(Ctx& ctx, const FwdParams<bf16_t>& p) {
  if (p.c.mode == int(AttnNorm::softmax)) return launch<D, int(AttnNorm::softmax)>(ctx, p);
  if (p.c.mode == int(AttnNorm::linear)) return launch<D, int(AttnNorm::linear)>(ctx, p);
  if (p.c.mode == int(AttnNorm::ramp)) {
    CHECK(p.parts && p.nparts == 2, "attention (fused, CUDA tensor cores): ramp needs out_parts [B, Hq, T, 2*dv] ",
          "(attention_tiled_nparts); pass AttentionTiledArgs::out_parts");
    return launch<D, int(AttnNorm::ramp)>(ctx, p);
  }
  FAIL_WITH("attention (fused, CUDA tensor cores): normalisation ", attn_norm_name(AttnNorm(p.c.mode)),
            " reached the mma kernels, which run softmax, linear and ramp; core/ops/attention_fused_path.cpp's "
            "predicate should have sent this call to the warp kernels");
}

}  // namespace

void launch_mma_forward(Ctx& ctx, const FwdParams<bf16_t>& p) {
  check_aligned16(p.q[0], "q"), check_aligned16(p.k[0], "k"), check_aligned16(p.v, "v");
  check_aligned16(p.out, "out");
  if (p.c.d == 64 && p.c.dv == 64) return launch_norm<64>(ctx, p);
  if (p.c.d == 128 && p.c.dv == 128) return launch_norm<128>(ctx, p);
  FAIL_WITH("attention (fused, CUDA tensor cores): head dims d=", p.c.d, " dv=", p.c.dv,
            " reached the mma kernels, which take d = dv in {64, 128}; core/ops/attention_fused_path.cpp's "
            "predicate should have sent this call to the warp kernels");
}

}  // namespace attnlab::cuda::fused::mma_path
