// Fused attention forward (CUDA): one block = kWarps query rows of one (batch, head), one warp per
// row; the block walks the key tiles in order (K, K2 and V of the tile staged in shared memory as
// fp32), each lane scores one key, and the warp updates the reference's TiledRowState exactly as
// core/ops/attention_tiled_forward.cpp does per tile: scores, tile max and first argmin, rescale
// when the max moves, then the basis sums (and Gram / span / raw-softmax sums when a statistic
// asks), and Σ φ·v per basis with each lane owning dv/32 output columns. The row's constants are
// then tiled_finalize's, O and the saved statistics follow. Captured rows and linear / ramp
// entropy and KL take the statistics pass (attention_fused_stats.cu) afterwards.
#include "cuda/attention_fused.cuh"

namespace attnlab::cuda::fused {

namespace {

template <int D, int DV>
size_t forward_smem(int nmaps) {
  return sizeof(float) * (size_t(nmaps) * kBc * (D + 1) + size_t(kBc) * (DV + 1) + size_t(kWarps) * nmaps * D +
                          size_t(kWarps) * kBc * kTiledBasis + kWarps);
}

template <class T, int D, int DV>
__global__ void __launch_bounds__(kThreads) forward_kernel(FwdParams<T> p) {
  constexpr int VL = DV / 32;  // output columns per lane: lane + 32·i
  const Common& c = p.c;
  const int nm = c.nmaps, mode = c.mode;
  extern __shared__ float smem[];
  float* ks = smem;                                  // [nm][kBc][D + 1]
  float* vs = ks + nm * kBc * (D + 1);               // [kBc][DV + 1]
  float* qs = vs + kBc * (DV + 1);                   // [kWarps][nm][D]
  float* ph = qs + kWarps * nm * D;                  // [kWarps][kBc][kTiledBasis]
  int* nvis = reinterpret_cast<int*>(ph + kWarps * kBc * kTiledBasis);  // [kWarps]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ntq = (c.T + kWarps - 1) / kWarps;
  const int64_t bh = blockIdx.x / ntq, t = (blockIdx.x % ntq) * kWarps + warp;
  const bool active = t < c.T;
  Row rw;
  if (active) rw = make_row(c, bh * c.T + t);
  else rw.n = 0;
  float* q_own = qs + warp * nm * D;
  if (active)
    for (int m = 0; m < nm; ++m)
      for (int e = lane; e < D; e += 32) q_own[m * D + e] = to_f(p.q[m][rw.r * D + e]);
  if (lane == 0) nvis[warp] = int(rw.n);
  __syncthreads();
  int64_t nmax = 0;
  for (int w = 0; w < kWarps; ++w) nmax = nvis[w] > nmax ? int64_t(nvis[w]) : nmax;
  // Basis functions O needs (the others feed scalar statistics only): the reference's vec_on.
  bool vec_on[kTiledBasis] = {};
  for (int m = 0; m < nm; ++m) {
    vec_on[tiled_e(m)] = attn_needs_max(mode);
    vec_on[tiled_u(m)] = vec_on[0] = !attn_needs_max(mode) || attn_needs_min(mode);
  }
  TiledRowState<float> st;
  st.init(nm, p.gram, p.raw_on);
  float acc[kTiledBasis][VL];
#pragma unroll
  for (int b = 0; b < kTiledBasis; ++b)
#pragma unroll
    for (int i = 0; i < VL; ++i) acc[b][i] = 0.f;
  float span_acc[kTiledBasis] = {0.f, 0.f, 0.f, 0.f, 0.f};  // lane k owns span k
  const int64_t kv0 = active ? rw.kv_base : (bh / c.Hq * c.Hkv + (bh % c.Hq) / c.G) * c.S_cap;

  for (int64_t j0 = 0; j0 < nmax; j0 += kBc) {
    __syncthreads();  // the previous tile is consumed
    for (int idx = threadIdx.x; idx < nm * kBc * D; idx += kThreads) {
      const int m = idx / (kBc * D), jj = (idx / D) % kBc, e = idx % D;
      const int64_t j = j0 + jj;
      ks[(m * kBc + jj) * (D + 1) + e] = j < nmax ? to_f(p.k[m][(kv0 + j) * D + e]) : 0.f;
    }
    for (int idx = threadIdx.x; idx < kBc * DV; idx += kThreads) {
      const int jj = idx / DV, e = idx % DV;
      const int64_t j = j0 + jj;
      vs[jj * (DV + 1) + e] = j < nmax ? to_f(p.v[(kv0 + j) * DV + e]) : 0.f;
    }
    __syncthreads();
    if (!active || j0 >= rw.n) continue;
    const int64_t j1 = j0 + kBc < rw.n ? j0 + kBc : rw.n, j = j0 + lane;
    const bool valid = j < j1;
    float x[2] = {0.f, 0.f}, raw0 = 0.f;
    for (int m = 0; m < nm; ++m) {
      const float raw = valid ? score_dot(q_own + m * D, ks + (m * kBc + lane) * (D + 1), D, c.scale) : 0.f;
      x[m] = rw.ctrl.apply(raw);
      if (m == 0) raw0 = raw;
      if (j0 == 0) st.K[m] = __shfl_sync(0xffffffffu, x[m], 0);
      const float tmax = warp_max(valid ? x[m] : -INFINITY);
      float tmin = valid ? x[m] : INFINITY;
      int64_t imin = valid ? j : INT64_MAX;
      warp_argmin(tmin, imin);
      if (tmin < st.mn[m]) st.mn[m] = tmin, st.imin[m] = imin;
      if (attn_needs_max(mode) && tmax > st.M[m]) {
        const float f = attn_exp(st.M[m] - tmax);
        st.rescale(m, f);
#pragma unroll
        for (int i = 0; i < VL; ++i) acc[tiled_e(m)][i] *= f;
        span_acc[tiled_e(m)] *= f;
        st.M[m] = tmax;
      }
    }
    if (p.raw_on) {
      const float tmax = warp_max(valid ? raw0 : -INFINITY);
      if (tmax > st.Mo) {
        const float f = attn_exp(st.Mo - tmax);
        st.lo *= f, st.so *= f, st.Mo = tmax;
      }
    }
    float phi[kTiledBasis] = {valid ? 1.f : 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int m = 0; m < nm; ++m) {
      if (attn_needs_max(mode)) phi[tiled_e(m)] = valid ? attn_exp(x[m] - st.M[m]) : 0.f;
      phi[tiled_u(m)] = valid ? x[m] - st.K[m] : 0.f;
    }
#pragma unroll
    for (int b = 0; b < kTiledBasis; ++b) st.sum[b] += warp_sum(phi[b]);
    if (p.gram)
#pragma unroll
      for (int b = 0; b < kTiledBasis; ++b)
#pragma unroll
        for (int e = 0; e < kTiledBasis; ++e) st.gram[b][e] += warp_sum(phi[b] * phi[e]);
    if (p.nspans > 0) {
      float* mine = ph + (warp * kBc) * kTiledBasis;
#pragma unroll
      for (int b = 0; b < kTiledBasis; ++b) mine[lane * kTiledBasis + b] = phi[b];
      __syncwarp();
      if (lane < p.nspans) {
        const int64_t s0 = p.spans[2 * lane], s1 = p.spans[2 * lane + 1];
        for (int64_t jj = j0; jj < j1; ++jj)
          if (jj >= s0 && jj < s1)
#pragma unroll
            for (int b = 0; b < kTiledBasis; ++b) span_acc[b] += mine[(jj - j0) * kTiledBasis + b];
      }
      __syncwarp();
    }
    if (p.raw_on) {
      const float eo = valid ? attn_exp(raw0 - st.Mo) : 0.f;
      st.lo += warp_sum(eo);
      st.so += warp_sum(eo * (raw0 - x[0]));
    }
    const int cnt = int(j1 - j0);
    for (int jj = 0; jj < cnt; ++jj) {
      const float* vrow = vs + jj * (DV + 1);
#pragma unroll
      for (int b = 0; b < kTiledBasis; ++b) {
        const float pb = __shfl_sync(0xffffffffu, phi[b], jj);
        if (!vec_on[b]) continue;
#pragma unroll
        for (int i = 0; i < VL; ++i) acc[b][i] = fmaf(pb, vrow[lane + 32 * i], acc[b][i]);
      }
    }
    st.n = j1;
  }
  if (!active) return;

  const int64_t r = rw.r;
  const TiledRowFinal<float> fin = tiled_finalize<float>(st, mode, c.alpha, rw.lambda);
#pragma unroll
  for (int i = 0; i < VL; ++i) {
    float o = 0.f;
#pragma unroll
    for (int b = 0; b < kTiledBasis; ++b)
      if (vec_on[b]) o += fin.coef[b] * acc[b][i];
    p.out[r * DV + lane + 32 * i] = from_f<T>(o);
  }
  if (p.nparts > 1) {
    const int nper = p.nparts / nm;
    for (int m = 0; m < nm; ++m)
      for (int k = 0; k < nper; ++k)
#pragma unroll
        for (int i = 0; i < VL; ++i) {
          float o = 0.f;
#pragma unroll
          for (int b = 0; b < kTiledBasis; ++b)
            if (vec_on[b]) o += fin.part_coef[m][k][b] * acc[b][i];
          p.parts[(r * p.nparts + m * nper + k) * DV + lane + 32 * i] = from_f<T>(o);
        }
  }
  const int64_t n = st.n;
  if (lane == 0) {
    for (int m = 0; m < nm; ++m) {
      if (p.lse[m]) p.lse[m][r] = fin.norm[m].lse;
      if (p.rmin[m]) p.rmin[m][r] = int32_t(st.imin[m]);
      if (p.rsum[m]) p.rsum[m][r] = fin.z[m];
    }
    if (p.var) {
      const float centre = n > 0 ? (1.f - rw.lambda) / float(n) : 0.f;
      const float sp = tiled_dot(fin.coef, st.sum);
      float sp2 = 0.f;
      for (int b = 0; b < kTiledBasis; ++b) sp2 += fin.coef[b] * tiled_dot(fin.coef, st.gram[b]);
      const float s1 = sp - float(n) * centre, s2 = sp2 - 2.f * centre * sp + float(n) * centre * centre;
      p.var[r] = attn_variance(s1, s2, n);
    }
    if (p.softmax_stats) {
      const float l = st.sum[tiled_e(0)];
      if (p.ent) p.ent[r] = n > 0 ? fin.norm[0].lse - st.K[0] - st.gram[tiled_e(0)][tiled_u(0)] / l : 0.f;
      if (p.kl) p.kl[r] = n > 0 ? fin.norm[0].lse - (st.Mo + attn_log(st.lo)) + st.so / st.lo : 0.f;
    }
  }
  if (lane < p.nspans) p.span_mass[r * p.nspans + lane] = tiled_dot(fin.coef, span_acc);
}

template <class T, int D, int DV>
void launch(Ctx& ctx, const FwdParams<T>& p) {
  const size_t smem = forward_smem<D, DV>(p.c.nmaps);
  CUDA_CHECK(cudaFuncSetAttribute(forward_kernel<T, D, DV>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int64_t blocks = p.c.B * p.c.Hq * ((p.c.T + kWarps - 1) / kWarps);
  forward_kernel<T, D, DV><<<dim3(unsigned(blocks)), kThreads, smem, stream_of(ctx)>>>(p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void launch_forward(Ctx& ctx, const FwdParams<T>& p) {
  const int d = p.c.d, dv = p.c.dv;
  if (d == 64 && dv == 64) return launch<T, 64, 64>(ctx, p);
  if (d == 64 && dv == 128) return launch<T, 64, 128>(ctx, p);
  if (d == 128 && dv == 128) return launch<T, 128, 128>(ctx, p);
  if (d == 128 && dv == 256) return launch<T, 128, 256>(ctx, p);
  FAIL_WITH("attention (fused, CUDA): head dims d=", d, " dv=", dv, " are not built (the support matrix admits ",
            "d in {64, 128}, dv in {d, 2d})");
}

template void launch_forward<float>(Ctx&, const FwdParams<float>&);
template void launch_forward<bf16_t>(Ctx&, const FwdParams<bf16_t>&);

}  // namespace attnlab::cuda::fused
