#pragma once
// Row kernels of the backward head (core/ops/backward_head.h), one function per step of the tile
// walk. Each runs on ctx.device: CPU loops (backward_head_rows.cpp) or CUDA kernels
// (cuda/backward_head.cu), both on backward_head_math.h. Arguments are validated by the op; these
// are internal. T = compute dtype, A = acc dtype (see backward_head.h).
//
// Tile buffers: z and w are [N, ld] with columns [0, cols) valid (vocabulary rows col0 + j);
// u (raw products Q^h K^hᵀ; s = β_h·u/sqrt(dk/H)) and du = dL/du are [H, N, ld]. Per-row head statistics are
// [N, H].
#include "core/ctx.h"

namespace attnlab {

struct BhTile {
  int64_t N = 0, H = 1, ld = 0, cols = 0, col0 = 0;
  double score_scale = 1.0;  // 1/sqrt(dk/H): s = β_h·score_scale·u (kept out of the GEMM's float alpha)
};

// run_max[r] = max(run_max[r] (unless first), max_j z[r, j]·inv_tau).
void bh_rows_max(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& run_max, bool first);
// list_out[r] = the k largest of (list_in[r] ∪ z[r, :cols]·inv_tau) (list_in read as −inf when
// first), theta[r] = the smallest of them.
void bh_rows_topk(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, int64_t k, const Tensor& list_in,
                  const Tensor& list_out, const Tensor& theta, bool first);
// w[r, j] = bh_weight(z·inv_tau, shift[r], θ[r]) in T; sum[r] (+)= Σ_j w (of the T values), when
// sum is defined.
void bh_rows_weights(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& shift,
                     const Tensor& theta, const Tensor& w, const Tensor& sum, bool first);
// mean[r] /= sum[r]; w_lse[r] = shift[r] + log sum[r].
void bh_rows_weights_finish(Ctx& ctx, int64_t N, int64_t dv, const Tensor& mean, const Tensor& sum,
                            const Tensor& shift, const Tensor& w_lse);
// Per head slice: rstd[r, h], out = T(γ ⊙ m·rstd).
void bh_rows_qnorm_forward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, double eps, const Tensor& mean,
                           const Tensor& gamma, const Tensor& rstd, const Tensor& out);
// Online log-sum-exp of s = β_h·score_scale·u into (run_max, run_sum) [N, H]; s_y[r, h] = s at the target
// when it lies in this tile (0 on the first tile otherwise, and for rows without a target).
void bh_rows_scores(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& targets,
                    const Tensor& run_max, const Tensor& run_sum, const Tensor& s_y, bool first);
// score_lse = run_max + log run_sum; target_logp (holding s_y) = s_y − lse (0 when ignored);
// loss = −bh_mixture_logp(target_logp) (0 when ignored), when defined. A target outside [0, V)
// that is not the ignore index: the CPU throws, the GPU writes NaN.
void bh_rows_scores_finish(Ctx& ctx, int64_t N, int64_t H, int64_t V, const Tensor& run_max,
                           const Tensor& run_sum, const Tensor& targets, const Tensor& score_lse,
                           const Tensor& target_logp, const Tensor& loss);
// out[r, col0 + j] = log of the mixture probability of vocabulary row col0 + j (out is [N, V]).
void bh_rows_logprobs(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& score_lse,
                      const Tensor& out);
// du = β_h·score_scale · scale · ρ_h · (π^h − onehot(y)) in T (0 for ignored rows);
// dbeta_rows[r, h] (+)= Σ_j dL/ds_j · score_scale·u_j.
void bh_rows_score_grad(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta,
                        const Tensor& score_lse, const Tensor& target_logp, const Tensor& loss,
                        const Tensor& targets, double scale, const Tensor& du, const Tensor& dbeta_rows,
                        bool first);
// dst (T) = src (A), elementwise, n elements.
void bh_rows_cast(Ctx& ctx, const Tensor& src, const Tensor& dst, int64_t n);
// Per head slice, RMSNorm backward of n = γ ⊙ m·r: dm (T, when defined) and the dγ terms
// gterms[r, c] = dn·m·r (A, when defined).
void bh_rows_qnorm_backward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, const Tensor& dn, const Tensor& mean,
                            const Tensor& rstd, const Tensor& gamma, const Tensor& dm, const Tensor& gterms);
// out[c] += Σ_r terms[r, c] (A), rows summed in order.
void bh_rows_column_sum(Ctx& ctx, const Tensor& terms, int64_t rows, int64_t cols, const Tensor& out);

namespace cuda {
void bh_rows_max(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& run_max, bool first);
void bh_rows_topk(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, int64_t k, const Tensor& list_in,
                  const Tensor& list_out, const Tensor& theta, bool first);
void bh_rows_weights(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& shift,
                     const Tensor& theta, const Tensor& w, const Tensor& sum, bool first);
void bh_rows_weights_finish(Ctx& ctx, int64_t N, int64_t dv, const Tensor& mean, const Tensor& sum,
                            const Tensor& shift, const Tensor& w_lse);
void bh_rows_qnorm_forward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, double eps, const Tensor& mean,
                           const Tensor& gamma, const Tensor& rstd, const Tensor& out);
void bh_rows_scores(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& targets,
                    const Tensor& run_max, const Tensor& run_sum, const Tensor& s_y, bool first);
void bh_rows_scores_finish(Ctx& ctx, int64_t N, int64_t H, int64_t V, const Tensor& run_max,
                           const Tensor& run_sum, const Tensor& targets, const Tensor& score_lse,
                           const Tensor& target_logp, const Tensor& loss);
void bh_rows_logprobs(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& score_lse,
                      const Tensor& out);
void bh_rows_score_grad(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta,
                        const Tensor& score_lse, const Tensor& target_logp, const Tensor& loss,
                        const Tensor& targets, double scale, const Tensor& du, const Tensor& dbeta_rows,
                        bool first);
void bh_rows_cast(Ctx& ctx, const Tensor& src, const Tensor& dst, int64_t n);
void bh_rows_qnorm_backward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, const Tensor& dn, const Tensor& mean,
                            const Tensor& rstd, const Tensor& gamma, const Tensor& dm, const Tensor& gterms);
}  // namespace cuda

}  // namespace attnlab
