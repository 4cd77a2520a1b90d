// Fused attention statistics pass (CUDA): the reference's second, score-only pass
// (second_pass_row in core/ops/attention_tiled_forward.cpp) for the rows that need it once the
// forward has written their constants: captured rows (scores of every key < S, masked ones
// included, and their probabilities: rows of the map without the map) and, for linear and ramp,
// entropy and KL, which need log(x − m + 1) with the final m. One warp per row, one key per lane;
// Q·Kᵀ is recomputed, V is not read. The row's constants come from the saved statistics (lse,
// m = x at row_min, 1/Z), KL's raw-score log-sum-exp from an online pass of its own.
#include "cuda/attention_fused.cuh"

namespace attnlab::cuda::fused {

namespace {

template <class T>
__global__ void __launch_bounds__(kThreads) stats_kernel(FwdParams<T> p) {
  const Common& c = p.c;
  const int nm = c.nmaps, mode = c.mode, d = c.d;
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (r >= c.B * c.Hq * c.T) return;
  const Row rw = make_row(c, r);
  int64_t slot = -1;
  if (p.cap_rows)
    for (int64_t i = 0; i < p.nrows; ++i)
      if (p.cap_rows[i] == rw.t) {
        slot = i;
        break;
      }
  const bool stats = p.second_stats;
  if (slot < 0 && !stats) return;
  const T* qr[2] = {p.q[0] + r * d, nm == 2 ? p.q[1] + r * d : nullptr};
  AttnRowNorm<float> norm[2];
  for (int m = 0; m < nm; ++m) {
    norm[m].mode = mode, norm[m].alpha = c.alpha;
    if (rw.n == 0) continue;
    if (attn_needs_max(mode)) norm[m].lse = p.lse[m][r];
    if (attn_needs_min(mode)) {
      norm[m].mn = rw.ctrl.apply(score_dot(qr[m], p.k[m] + (rw.kv_base + p.rmin[m][r]) * d, d, c.scale));
      norm[m].inv_z = 1.f / p.rsum[m][r];
    }
  }
  // KL's reference distribution: the softmax of the raw scores over the visible keys.
  float lse_raw = 0.f;
  if (stats && p.kl && rw.n > 0) {
    float mx = -INFINITY, sum = 0.f;
    for (int64_t j0 = 0; j0 < rw.n; j0 += 32) {
      const int64_t j = j0 + lane;
      const float raw = j < rw.n ? score_dot(qr[0], p.k[0] + (rw.kv_base + j) * d, d, c.scale) : -INFINITY;
      const float tmax = warp_max(raw);
      if (tmax > mx) sum *= attn_exp(mx - tmax), mx = tmax;
      sum += warp_sum(j < rw.n ? attn_exp(raw - mx) : 0.f);
    }
    lse_raw = mx + attn_log(sum);
  }
  const int64_t S = c.S, cap_off = ((rw.b * c.Hq + rw.h) * p.nrows + slot) * S;
  const int64_t end = slot >= 0 ? S : rw.n;
  float s_ent = 0.f, s_kl = 0.f;
  for (int64_t j0 = 0; j0 < end; j0 += 32) {
    const int64_t j = j0 + lane;
    if (j >= end) break;
    float x[2] = {0.f, 0.f}, raw[2] = {0.f, 0.f};
    for (int m = 0; m < nm; ++m) {
      raw[m] = score_dot(qr[m], p.k[m] + (rw.kv_base + j) * d, d, c.scale);
      x[m] = rw.ctrl.apply(raw[m]);
      if (slot >= 0 && p.cap_scores[m]) p.cap_scores[m][cap_off + j] = x[m];
    }
    float prob = 0.f;
    if (j < rw.n) {
      const float p1 = norm[0].prob(x[0]);
      prob = nm == 2 ? p1 - rw.lambda * norm[1].prob(x[1]) : p1;
      if (stats) {
        const float logp = norm[0].log_prob(x[0], p1);
        s_ent += attn_entropy_term(prob, logp);
        if (p.kl) s_kl += attn_kl_term(raw[0], lse_raw, logp);
      }
    }
    if (slot >= 0 && p.cap_probs) p.cap_probs[cap_off + j] = prob;
  }
  if (!stats) return;
  s_ent = warp_sum(s_ent);
  s_kl = warp_sum(s_kl);
  if (lane == 0) {
    if (p.ent) p.ent[r] = s_ent;
    if (p.kl) p.kl[r] = s_kl;
  }
}

}  // namespace

template <class T>
void launch_stats(Ctx& ctx, const FwdParams<T>& p) {
  if (!p.cap_rows && !p.second_stats) return;
  const int64_t rows = p.c.B * p.c.Hq * p.c.T;
  stats_kernel<T><<<dim3(unsigned((rows + kWarps - 1) / kWarps)), kThreads, 0, stream_of(ctx)>>>(p);
  CUDA_CHECK_LAUNCH();
}

template void launch_stats<float>(Ctx&, const FwdParams<float>&);
template void launch_stats<bf16_t>(Ctx&, const FwdParams<bf16_t>&);

}  // namespace attnlab::cuda::fused
