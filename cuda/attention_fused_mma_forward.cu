// Fused attention forward on tensor cores (bf16, softmax and linear; the calls
// core/ops/attention_fused_path.h's predicate admits). One block = 64 query rows of one (batch,
// head), 4 warps of 16 rows each; the block walks the key tiles [j0, j0 + 64) up to the visible
// keys of its last row:
//   Q (16 × d per warp) sits in registers as A fragments for the whole walk;
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
// Per-row controllers: x = Sc·τ + a on the accumulators before either normalisation.
// Saved: softmax lse = M + log ℓ (natural log, 0 for a row with no visible key, whose O is 0);
// linear row_sum = Z and row_min (first index of the minimum score, −1 with no key); row_min also
// for softmax when the caller keeps it — what the warp kernel saves, so either backward reads them.
#include "cuda/attention_fused_mma.cuh"

namespace attnlab::cuda::fused::mma_path {

namespace {

template <int D>
constexpr size_t forward_smem() {
  return sizeof(bf16_t) * size_t(kBlockRows + 2 * kKeyTile) * padded<D>();
}

template <int D, bool LIN>
__global__ void __launch_bounds__(kMmaThreads) mma_forward_kernel(FwdParams<bf16_t> p) {
#if ATTNLAB_MMA_ARCH_OK
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

  cp_async_wait<0>();
  __syncthreads();
  uint32_t qa[KS][4];
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) load_a<D>(qa[kk], qs, warp * 16, kk * 16, lane);

  // softmax: o = Σ e·v, run = M (base 2), acc = ℓ (this lane's part).
  // linear:  o = Σ (x − run + 1)·v with run the running min, o1 = Σ v over visible keys, acc = this
  //          lane's part of Σ (x − run + 1), cnt its visible keys; when the min drops by δ every
  //          sum gains δ per key already in it: o += δ·o1, acc += δ·cnt (exact shift, no rescale).
  float o[OT][4], o1[LIN ? OT : 1][4];
#pragma unroll
  for (int i = 0; i < OT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
#pragma unroll
  for (int i = 0; i < (LIN ? OT : 1); ++i) o1[i][0] = o1[i][1] = o1[i][2] = o1[i][3] = 0.f;
  float run[2] = {LIN ? INFINITY : -INFINITY, LIN ? INFINITY : -INFINITY}, acc[2] = {0.f, 0.f};
  float cnt[2] = {0.f, 0.f};
  float mn[2] = {INFINITY, INFINITY};  // running min of x (natural units) and its first index
  int64_t imin[2] = {-1, -1};
  // Per-row controllers (METHODS §4.3): x = Sc·τ + a with Sc = s·q·k; identity when absent.
  float tau[2] = {1.f, 1.f}, add[2] = {0.f, 0.f};
#pragma unroll
  for (int hf = 0; hf < 2; ++hf)
    if (tr[hf] < c.T) {
      if (c.mul) tau[hf] = c.mul[row0 + tr[hf]];
      if (c.add) add[hf] = c.add[row0 + tr[hf]];
    }
  const bool want_min = LIN || p.rmin[0] != nullptr;  // the argmin costs a compare per score

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
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t kb[4];
        load_b<D>(kb, ks, np * 16, kk * 16, lane);
        mma_bf16(s[2 * np], qa[kk], kb[0], kb[1]);
        mma_bf16(s[2 * np + 1], qa[kk], kb[2], kb[3]);
      }

    // Mask (key j visible to row t iff j < n_t), the first minimum; softmax: scores to base 2 and
    // the tile's row max (masked: −inf); linear: natural units, the tile's row min (masked: +inf).
    float ext[2] = {LIN ? INFINITY : -INFINITY, LIN ? INFINITY : -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int hf = i >> 1;
        const int64_t j = j0 + nt * 8 + c_elem(lane, i).col;
        const bool vis = j < n[hf];
        const float x = fmaf(s[nt][i] * c.scale, tau[hf], add[hf]);  // natural units, as the warp kernel's
        if (want_min && vis && (x < mn[hf] || (x == mn[hf] && j < imin[hf]))) mn[hf] = x, imin[hf] = j;
        if constexpr (LIN) {
          s[nt][i] = vis ? x : INFINITY;
          ext[hf] = fminf(ext[hf], s[nt][i]);
        } else {
          s[nt][i] = vis ? x * kLog2e : -INFINITY;
          ext[hf] = fmaxf(ext[hf], s[nt][i]);
        }
      }
    float base[2];
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      if constexpr (LIN) {
        const float m_new = fminf(run[hf], quad_min(ext[hf]));
        if (m_new < run[hf] && run[hf] != INFINITY) {
          const float dlt = run[hf] - m_new;
          acc[hf] = fmaf(dlt, cnt[hf], acc[hf]);
#pragma unroll
          for (int ot = 0; ot < OT; ++ot) {
            o[ot][2 * hf] = fmaf(dlt, o1[ot][2 * hf], o[ot][2 * hf]);
            o[ot][2 * hf + 1] = fmaf(dlt, o1[ot][2 * hf + 1], o[ot][2 * hf + 1]);
          }
        }
        run[hf] = m_new;
        base[hf] = m_new;
      } else {
        const float m_new = fmaxf(run[hf], quad_max(ext[hf]));
        base[hf] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet keeps exact zeros
        const float f = exp2f(run[hf] - base[hf]);
        acc[hf] *= f;
#pragma unroll
        for (int ot = 0; ot < OT; ++ot) o[ot][2 * hf] *= f, o[ot][2 * hf + 1] *= f;
        run[hf] = m_new;
      }
    }
    // Weights: softmax e = exp2(x − M) (masked: 0); linear x − m + 1 (masked: 0), and the mask in mk.
    float mk[LIN ? NT : 1][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int hf = i >> 1;
        if constexpr (LIN) {
          const bool vis = s[nt][i] != INFINITY;
          const float w = vis ? s[nt][i] - base[hf] + 1.f : 0.f;
          mk[nt][i] = vis ? 1.f : 0.f;
          cnt[hf] += mk[nt][i];
          acc[hf] += w;
          s[nt][i] = w;
        } else {
          const float pe = exp2f(s[nt][i] - base[hf]);  // masked: exp2(−inf) = 0
          acc[hf] += pe;
          s[nt][i] = pe;
        }
      }

    // O += P·V (linear: and O1 += mask·V): the k16 block kb of P is score tiles 2kb, 2kb + 1.
#pragma unroll
    for (int kb = 0; kb < kKeyTile / 16; ++kb) {
      uint32_t pa[4], ma[4];
      c_to_a(pa, s[2 * kb], s[2 * kb + 1]);
      if constexpr (LIN) c_to_a(ma, mk[2 * kb], mk[2 * kb + 1]);
#pragma unroll
      for (int np = 0; np < OT / 2; ++np) {
        uint32_t vb[4];
        load_bt<D>(vb, vs, kb * 16, np * 16, lane);
        mma_bf16(o[2 * np], pa, vb[0], vb[1]);
        mma_bf16(o[2 * np + 1], pa, vb[2], vb[3]);
        if constexpr (LIN) {
          mma_bf16(o1[2 * np], ma, vb[0], vb[1]);
          mma_bf16(o1[2 * np + 1], ma, vb[2], vb[3]);
        }
      }
    }
  }

  // Rows: the normaliser over the quad (ℓ or Z), the first minimum over the quad, then O = o / it
  // and the statistics.
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const float l = quad_sum(acc[hf]);
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      const float w = __shfl_xor_sync(0xffffffffu, mn[hf], off);
      const int64_t jw = __shfl_xor_sync(0xffffffffu, imin[hf], off);
      if (jw >= 0 && (imin[hf] < 0 || w < mn[hf] || (w == mn[hf] && jw < imin[hf]))) mn[hf] = w, imin[hf] = jw;
    }
    if (tr[hf] >= c.T) continue;
    const int64_t r = row0 + tr[hf];
    const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int ot = 0; ot < OT; ++ot)
      store_bf16x2(p.out + r * D + ot * 8 + 2 * qd, o[ot][2 * hf] * inv, o[ot][2 * hf + 1] * inv);
    if (qd == 0) {
      if (p.lse[0]) p.lse[0][r] = !LIN && n[hf] > 0 ? run[hf] * kLn2 + logf(l) : 0.f;
      if (p.rmin[0]) p.rmin[0][r] = int32_t(imin[hf]);
      if (p.rsum[0]) p.rsum[0][r] = LIN && n[hf] > 0 ? l : 0.f;
    }
  }
#else
  __trap();
#endif
}

template <int D, bool LIN>
void launch(Ctx& ctx, const FwdParams<bf16_t>& p) {
  constexpr size_t smem = forward_smem<D>();
  CUDA_CHECK(cudaFuncSetAttribute(mma_forward_kernel<D, LIN>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int64_t blocks = p.c.B * p.c.Hq * ((p.c.T + kBlockRows - 1) / kBlockRows);
  mma_forward_kernel<D, LIN><<<dim3(unsigned(blocks)), kMmaThreads, smem, stream_of(ctx)>>>(p);
  CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_norm(Ctx& ctx, const FwdParams<bf16_t>& p) {
  if (p.c.mode == int(AttnNorm::softmax)) return launch<D, false>(ctx, p);
  if (p.c.mode == int(AttnNorm::linear)) return launch<D, true>(ctx, p);
  FAIL_WITH("attention (fused, CUDA tensor cores): normalisation ", attn_norm_name(AttnNorm(p.c.mode)),
            " reached the mma kernels, which run softmax and linear; core/ops/attention_fused_path.cpp's "
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
