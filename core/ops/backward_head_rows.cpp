// CPU row kernels of the backward head and the device dispatch of every row kernel. On the CPU
// the compute dtype and the acc dtype are the same (f32 or f64), so one type parameter serves.
#include "core/ops/backward_head_rows.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dispatch.h"
#include "core/ops/backward_head_math.h"
#include "core/ops/matmul.h"
#include "core/ops/row_norm_cpu.h"

namespace attnlab {

namespace {

// OpenMP threshold: parallel only when the loop does real work.
constexpr int64_t kParallelMin = 65536;

template <class F>
void dispatch(const Tensor& t, const char* op, F&& f) {
  dispatch_cpu_float(t.dtype, op, std::forward<F>(f));
}

// Row r of a [N, ld] tile / of head h of an [H, N, ld] tile.
template <class A>
const A* tile_row(const Tensor& x, const BhTile& t, int64_t h, int64_t r) {
  return x.ptr<A>() + (h * t.N + r) * t.ld;
}

}  // namespace

void bh_rows_max(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& run_max, bool first) {
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_max(ctx, t, z, inv_tau, run_max, first));
  dispatch(z, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    A* out = run_max.ptr<A>();
#pragma omp parallel for schedule(static) if (t.N * t.cols > kParallelMin)
    for (int64_t r = 0; r < t.N; ++r) {
      const A* x = tile_row<A>(z, t, 0, r);
      A m = first ? -A(INFINITY) : out[r];
      for (int64_t j = 0; j < t.cols; ++j) m = nan_max(m, x[j] * A(inv_tau));
      out[r] = m;
    }
  });
}

void bh_rows_topk(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, int64_t k, const Tensor& list_in,
                  const Tensor& list_out, const Tensor& theta, bool first) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_topk(ctx, t, z, inv_tau, k, list_in, list_out, theta, first));
  dispatch(z, "backward_head", [&](auto tag) {
    using A = decltype(tag);
#pragma omp parallel for schedule(static) if (t.N * t.cols > kParallelMin)
    for (int64_t r = 0; r < t.N; ++r) {
      std::vector<A> cand(size_t(k + t.cols));
      const A* in = list_in.ptr<A>() + r * k;
      for (int64_t i = 0; i < k; ++i) cand[size_t(i)] = first ? -A(INFINITY) : in[i];
      const A* x = tile_row<A>(z, t, 0, r);
      for (int64_t j = 0; j < t.cols; ++j) cand[size_t(k + j)] = x[j] * A(inv_tau);
      std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), std::greater<A>());
      A* out = list_out.ptr<A>() + r * k;
      std::copy(cand.begin(), cand.begin() + k, out);
      theta.ptr<A>()[r] = cand[size_t(k - 1)];
    }
  });
}

void bh_rows_weights(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& shift,
                     const Tensor& theta, const Tensor& w, const Tensor& sum, bool first) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_weights(ctx, t, z, inv_tau, shift, theta, w, sum, first));
  dispatch(z, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const bool has_theta = theta.defined();
#pragma omp parallel for schedule(static) if (t.N * t.cols > kParallelMin)
    for (int64_t r = 0; r < t.N; ++r) {
      const A* x = tile_row<A>(z, t, 0, r);
      A* wr = w.ptr<A>() + r * t.ld;
      const A sh = shift.ptr<A>()[r], th = has_theta ? theta.ptr<A>()[r] : A(0);
      A s = 0;
      for (int64_t j = 0; j < t.cols; ++j) {
        wr[j] = bh_weight(x[j] * A(inv_tau), sh, has_theta, th);
        s += wr[j];
      }
      if (sum.defined()) sum.ptr<A>()[r] = first ? s : sum.ptr<A>()[r] + s;
    }
  });
}

void bh_rows_weights_finish(Ctx& ctx, int64_t N, int64_t dv, const Tensor& mean, const Tensor& sum,
                            const Tensor& shift, const Tensor& w_lse) {
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_weights_finish(ctx, N, dv, mean, sum, shift, w_lse));
  dispatch(mean, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    for (int64_t r = 0; r < N; ++r) {
      const A s = sum.ptr<A>()[r];
      A* m = mean.ptr<A>() + r * dv;
      for (int64_t c = 0; c < dv; ++c) m[c] /= s;
      w_lse.ptr<A>()[r] = shift.ptr<A>()[r] + ce_log(s);
    }
  });
}

void bh_rows_qnorm_forward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, double eps, const Tensor& mean,
                           const Tensor& gamma, const Tensor& rstd, const Tensor& out) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_qnorm_forward(ctx, N, H, dv, eps, mean, gamma, rstd, out));
  dispatch(mean, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const int64_t dh = dv / H;
    const A* g = gamma.ptr<A>();
#pragma omp parallel for schedule(static) if (N * dv > kParallelMin)
    for (int64_t r = 0; r < N; ++r)
      for (int64_t h = 0; h < H; ++h) {
        const A* m = mean.ptr<A>() + r * dv + h * dh;
        A sq = 0;
        for (int64_t c = 0; c < dh; ++c) sq += m[c] * m[c];
        const A rs = bh_rstd(sq, dh, A(eps));
        rstd.ptr<A>()[r * H + h] = rs;
        A* o = out.ptr<A>() + r * dv + h * dh;
        for (int64_t c = 0; c < dh; ++c) o[c] = g[h * dh + c] * (m[c] * rs);
      }
  });
}

void bh_rows_scores(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& targets,
                    const Tensor& run_max, const Tensor& run_sum, const Tensor& s_y, bool first) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_scores(ctx, t, u, beta, targets, run_max, run_sum, s_y, first));
  dispatch(u, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const int32_t* y = targets.defined() ? targets.ptr<int32_t>() : nullptr;
#pragma omp parallel for schedule(static) if (t.N * t.H * t.cols > kParallelMin)
    for (int64_t r = 0; r < t.N; ++r)
      for (int64_t h = 0; h < t.H; ++h) {
        const A* x = tile_row<A>(u, t, h, r);
        const A b = beta.ptr<A>()[h] * A(t.score_scale);
        A m = -A(INFINITY);
        for (int64_t j = 0; j < t.cols; ++j) m = nan_max(m, b * x[j]);
        A s = 0;
        if (m != -A(INFINITY))
          for (int64_t j = 0; j < t.cols; ++j) s += ce_exp(b * x[j] - m);
        const int64_t i = r * t.H + h;
        LseState<A> st{m, s};
        if (!first) st = lse_merge(LseState<A>{run_max.ptr<A>()[i], run_sum.ptr<A>()[i]}, st);
        run_max.ptr<A>()[i] = st.max;
        run_sum.ptr<A>()[i] = st.sum;
        const int64_t yj = y ? int64_t(y[r]) - t.col0 : -1;
        if (yj >= 0 && yj < t.cols) s_y.ptr<A>()[i] = b * x[yj];
        else if (first) s_y.ptr<A>()[i] = 0;
      }
  });
}

void bh_rows_scores_finish(Ctx& ctx, int64_t N, int64_t H, int64_t V, const Tensor& run_max,
                           const Tensor& run_sum, const Tensor& targets, const Tensor& score_lse,
                           const Tensor& target_logp, const Tensor& loss) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(
        cuda::bh_rows_scores_finish(ctx, N, H, V, run_max, run_sum, targets, score_lse, target_logp, loss));
  const int32_t* y = targets.defined() ? targets.ptr<int32_t>() : nullptr;
  if (y)
    for (int64_t r = 0; r < N; ++r)
      CHECK(y[r] == kIgnoreIndex || (y[r] >= 0 && y[r] < V), "backward_head_forward: target ", y[r],
            " at row ", r, " is outside [0, V=", V, ") and is not the ignore index ", kIgnoreIndex);
  dispatch(run_max, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    for (int64_t r = 0; r < N; ++r) {
      const bool valid = y && y[r] != kIgnoreIndex;
      A* lp = target_logp.ptr<A>() + r * H;
      for (int64_t h = 0; h < H; ++h) {
        const A l = lse_value(LseState<A>{run_max.ptr<A>()[r * H + h], run_sum.ptr<A>()[r * H + h]});
        score_lse.ptr<A>()[r * H + h] = l;
        lp[h] = valid ? lp[h] - l : A(0);
      }
      if (loss.defined()) loss.ptr<A>()[r] = valid ? -bh_mixture_logp(lp, H) : A(0);
    }
  });
}

void bh_rows_logprobs(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& score_lse,
                      const Tensor& out) {
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_logprobs(ctx, t, u, beta, score_lse, out));
  dispatch(u, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const int64_t V = out.dim(1);
#pragma omp parallel for schedule(static) if (t.N * t.H * t.cols > kParallelMin)
    for (int64_t r = 0; r < t.N; ++r) {
      std::vector<A> lp(size_t(t.H));
      A* o = out.ptr<A>() + r * V + t.col0;
      for (int64_t j = 0; j < t.cols; ++j) {
        for (int64_t h = 0; h < t.H; ++h)
          lp[size_t(h)] = beta.ptr<A>()[h] * A(t.score_scale) * tile_row<A>(u, t, h, r)[j] - score_lse.ptr<A>()[r * t.H + h];
        o[j] = bh_mixture_logp(lp.data(), t.H);
      }
    }
  });
}

void bh_rows_score_grad(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta,
                        const Tensor& score_lse, const Tensor& target_logp, const Tensor& loss,
                        const Tensor& targets, double scale, const Tensor& du, const Tensor& dbeta_rows,
                        bool first) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_score_grad(ctx, t, u, beta, score_lse, target_logp, loss, targets,
                                                          scale, du, dbeta_rows, first));
  dispatch(u, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const int32_t* y = targets.ptr<int32_t>();
#pragma omp parallel for schedule(static) if (t.N * t.H * t.cols > kParallelMin)
    for (int64_t r = 0; r < t.N; ++r)
      for (int64_t h = 0; h < t.H; ++h) {
        const A* x = tile_row<A>(u, t, h, r);
        A* g = du.ptr<A>() + (h * t.N + r) * t.ld;
        const int64_t i = r * t.H + h;
        A part = 0;
        if (y[r] == kIgnoreIndex) {
          std::fill(g, g + t.cols, A(0));
        } else {
          const A b = beta.ptr<A>()[h] * A(t.score_scale), l = score_lse.ptr<A>()[i];
          const A rs = A(scale) * bh_responsibility(target_logp.ptr<A>()[i], loss.ptr<A>()[r], t.H);
          const int64_t yj = int64_t(y[r]) - t.col0;
          for (int64_t j = 0; j < t.cols; ++j) {
            const A ds = bh_score_grad(b * x[j], l, j == yj, rs);
            g[j] = b * ds;
            part += ds * x[j];
          }
        }
        part *= A(t.score_scale);
        if (dbeta_rows.defined()) dbeta_rows.ptr<A>()[i] = first ? part : dbeta_rows.ptr<A>()[i] + part;
      }
  });
}

void bh_rows_cast(Ctx& ctx, const Tensor& src, const Tensor& dst, int64_t n) {
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_cast(ctx, src, dst, n));
  dispatch(src, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    std::copy(src.ptr<A>(), src.ptr<A>() + n, dst.ptr<A>());
  });
}

void bh_rows_qnorm_backward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, const Tensor& dn, const Tensor& mean,
                            const Tensor& rstd, const Tensor& gamma, const Tensor& dm, const Tensor& gterms) {
  if (ctx.is_cuda())
    return ATTNLAB_CUDA_DISPATCH(cuda::bh_rows_qnorm_backward(ctx, N, H, dv, dn, mean, rstd, gamma, dm, gterms));
  dispatch(mean, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const int64_t dh = dv / H;
    const A* gm = gamma.ptr<A>();
#pragma omp parallel for schedule(static) if (N * dv > kParallelMin)
    for (int64_t r = 0; r < N; ++r)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = r * dv + h * dh;
        const A *d = dn.ptr<A>() + o, *m = mean.ptr<A>() + o, *g = gm + h * dh;
        const A rs = rstd.ptr<A>()[r * H + h];
        if (gterms.defined())
          for (int64_t c = 0; c < dh; ++c) gterms.ptr<A>()[o + c] = d[c] * m[c] * rs;
        if (!dm.defined()) continue;
        A sum_gx = 0;
        for (int64_t c = 0; c < dh; ++c) sum_gx += g[c] * d[c] * m[c];
        const A mean_gx = sum_gx / A(dh);
        A* out = dm.ptr<A>() + o;
        for (int64_t c = 0; c < dh; ++c) out[c] = bh_rmsnorm_dx(g[c] * d[c], m[c], rs, mean_gx);
      }
  });
}

void bh_rows_column_sum(Ctx& ctx, const Tensor& terms, int64_t rows, int64_t cols, const Tensor& out) {
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::bias_grad(ctx, terms, out, rows, cols));
  dispatch(terms, "backward_head", [&](auto tag) {
    using A = decltype(tag);
    const A* x = terms.ptr<A>();
    add_column_sums(out.ptr<A>(), rows, cols, [&](int64_t r, int64_t c) { return x[r * cols + c]; });
  });
}

}  // namespace attnlab
