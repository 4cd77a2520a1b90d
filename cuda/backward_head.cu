// Row kernels of the backward head (core/ops/backward_head_rows.h). One block per row (or per
// (head, row) pair) walks its columns; reductions are block reductions in a fixed order and the
// per-row running state is owned by that block, so every result is deterministic. The GEMMs of
// the tile walk run through the matmul op (core/ops/backward_head.cpp).
#include <cstdint>

#include "core/ops/backward_head_math.h"
#include "core/ops/backward_head_rows.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float warp_nan_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Block-wide max that lets NaN through; every thread gets the result. `shared` holds >= 32 floats.
__device__ __forceinline__ float block_nan_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_nan_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : -INFINITY;
  return warp_nan_max(v);
}

__global__ void rows_max_kernel(const float* __restrict__ z, int64_t ld, int64_t cols, float inv_tau,
                                float* __restrict__ run_max, bool first) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const float* x = z + r * ld;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = nan_max(m, x[j] * inv_tau);
  m = block_nan_max(m, shared);
  if (threadIdx.x == 0) run_max[r] = first ? m : nan_max(run_max[r], m);
}

// The k largest of (list_in ∪ tile row) by a radix select over the order keys (four 8-bit
// passes, integer histograms in shared memory), then a compaction into list_out: every value
// above the k-th, then copies of the k-th up to k entries. The order of list_out is not fixed, its
// content is.
__global__ void rows_topk_kernel(const float* __restrict__ z, int64_t ld, int64_t cols, float inv_tau, int64_t k,
                                 const float* __restrict__ list_in, float* __restrict__ list_out,
                                 float* __restrict__ theta, bool first) {
  __shared__ unsigned hist[256];
  __shared__ uint32_t prefix_s;
  __shared__ unsigned long long need_s;
  __shared__ unsigned long long pos_s;
  const int64_t r = blockIdx.x;
  const float* x = z + r * ld;
  const float* in = list_in + r * k;
  float* out = list_out + r * k;
  const int64_t total = k + cols;
  auto value = [&](int64_t i) -> float { return i < k ? (first ? -INFINITY : in[i]) : x[i - k] * inv_tau; };
  auto key = [&](int64_t i) { return bh_order_key(__float_as_uint(value(i))); };
  if (threadIdx.x == 0) prefix_s = 0u, need_s = (unsigned long long)k;
  uint32_t mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    const uint32_t prefix = prefix_s;
    for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
      const uint32_t kk = key(i);
      if ((kk & mask) == prefix) atomicAdd(&hist[(kk >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long cum = 0, need = need_s;
      for (int b = 255; b >= 0; --b) {
        if (cum + hist[b] >= need) {
          prefix_s = prefix | (uint32_t(b) << shift);
          need_s = need - cum;
          break;
        }
        cum += hist[b];
      }
    }
    mask |= 255u << shift;
    __syncthreads();
  }
  const uint32_t kth = prefix_s;
  const float kth_value = __uint_as_float(bh_key_bits(kth));
  if (threadIdx.x == 0) pos_s = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < total; i += blockDim.x)
    if (key(i) > kth) out[atomicAdd(&pos_s, 1ull)] = value(i);
  __syncthreads();
  for (int64_t i = int64_t(pos_s) + threadIdx.x; i < k; i += blockDim.x) out[i] = kth_value;
  if (threadIdx.x == 0) theta[r] = kth_value;
}

template <class T>
__global__ void rows_weights_kernel(const float* __restrict__ z, int64_t ld, int64_t cols, float inv_tau,
                                    const float* __restrict__ shift, const float* __restrict__ theta,
                                    T* __restrict__ w, float* __restrict__ sum, bool first) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const float* x = z + r * ld;
  T* wr = w + r * ld;
  const float sh = shift[r], th = theta ? theta[r] : 0.f;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const T v = from_f<T>(bh_weight(x[j] * inv_tau, sh, theta != nullptr, th));
    wr[j] = v;
    s += to_f(v);  // the sum of what the GEMM reads
  }
  if (!sum) return;
  s = block_sum(s, shared);
  if (threadIdx.x == 0) sum[r] = first ? s : sum[r] + s;
}

__global__ void rows_weights_finish_kernel(float* __restrict__ mean, int64_t dv, const float* __restrict__ sum,
                                           const float* __restrict__ shift, float* __restrict__ w_lse) {
  const int64_t r = blockIdx.x;
  const float s = sum[r];
  for (int64_t c = threadIdx.x; c < dv; c += blockDim.x) mean[r * dv + c] /= s;
  if (threadIdx.x == 0) w_lse[r] = shift[r] + logf(s);
}

// Block b = (r, h): one head slice of one row.
template <class T>
__global__ void rows_qnorm_forward_kernel(const float* __restrict__ mean, const T* __restrict__ gamma, int64_t H,
                                          int64_t dv, float eps, float* __restrict__ rstd, T* __restrict__ out) {
  __shared__ float shared[32];
  const int64_t b = blockIdx.x, r = b / H, h = b % H, dh = dv / H, o = r * dv + h * dh;
  float sq = 0.f;
  for (int64_t c = threadIdx.x; c < dh; c += blockDim.x) sq += mean[o + c] * mean[o + c];
  const float rs = bh_rstd(block_sum(sq, shared), dh, eps);
  if (threadIdx.x == 0) rstd[b] = rs;
  for (int64_t c = threadIdx.x; c < dh; c += blockDim.x)
    out[o + c] = from_f<T>(to_f(gamma[h * dh + c]) * (mean[o + c] * rs));
}

// Block b = h·N + r.
__global__ void rows_scores_kernel(const float* __restrict__ u, int64_t N, int64_t H, int64_t ld, int64_t cols,
                                   int64_t col0, float score_scale, const float* __restrict__ beta,
                                   const int32_t* __restrict__ y,
                                   float* __restrict__ run_max, float* __restrict__ run_sum, float* __restrict__ s_y,
                                   bool first) {
  __shared__ float shared[32];
  const int64_t b = blockIdx.x, h = b / N, r = b % N, i = r * H + h;
  const float* x = u + b * ld;
  const float bt = beta[h] * score_scale;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = nan_max(m, bt * x[j]);
  m = block_nan_max(m, shared);
  float s = 0.f;
  if (m != -INFINITY)
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += expf(bt * x[j] - m);
  s = block_sum(s, shared);
  if (threadIdx.x != 0) return;
  LseState<float> st{m, s};
  if (!first) st = lse_merge(LseState<float>{run_max[i], run_sum[i]}, st);
  run_max[i] = st.max;
  run_sum[i] = st.sum;
  const int64_t yj = y ? int64_t(y[r]) - col0 : -1;
  if (yj >= 0 && yj < cols) s_y[i] = bt * x[yj];
  else if (first) s_y[i] = 0.f;
}

// One thread per row.
__global__ void rows_scores_finish_kernel(int64_t N, int64_t H, int64_t V, const float* __restrict__ run_max,
                                          const float* __restrict__ run_sum, const int32_t* __restrict__ y,
                                          float* __restrict__ score_lse, float* __restrict__ target_logp,
                                          float* __restrict__ loss) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= N) return;
  const int32_t t = y ? y[r] : kIgnoreIndex;
  const bool valid = t != kIgnoreIndex;
  const bool bad = valid && (t < 0 || t >= V);
  float* lp = target_logp + r * H;
  for (int64_t h = 0; h < H; ++h) {
    const float l = lse_value(LseState<float>{run_max[r * H + h], run_sum[r * H + h]});
    score_lse[r * H + h] = l;
    lp[h] = bad ? NAN : valid ? lp[h] - l : 0.f;
  }
  if (loss) loss[r] = bad ? NAN : valid ? -bh_mixture_logp(lp, H) : 0.f;
}

// Block per row, threads over the tile's columns; the mixture over heads inline (two passes over
// H, as bh_mixture_logp).
__global__ void rows_logprobs_kernel(const float* __restrict__ u, int64_t N, int64_t H, int64_t ld, int64_t cols,
                                     int64_t col0, float score_scale, const float* __restrict__ beta,
                                     const float* __restrict__ score_lse, float* __restrict__ out, int64_t V) {
  const int64_t r = blockIdx.x;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float m = -INFINITY;
    for (int64_t h = 0; h < H; ++h) m = nan_max(m, beta[h] * score_scale * u[(h * N + r) * ld + j] - score_lse[r * H + h]);
    float s = 0.f;
    if (m != -INFINITY)
      for (int64_t h = 0; h < H; ++h) s += expf(beta[h] * score_scale * u[(h * N + r) * ld + j] - score_lse[r * H + h] - m);
    out[r * V + col0 + j] = m == -INFINITY ? m : m + logf(s / float(H));
  }
}

// Block b = h·N + r.
template <class T>
__global__ void rows_score_grad_kernel(const float* __restrict__ u, int64_t N, int64_t H, int64_t ld, int64_t cols,
                                       int64_t col0, float score_scale, const float* __restrict__ beta,
                                       const float* __restrict__ score_lse, const float* __restrict__ target_logp,
                                       const float* __restrict__ loss, const int32_t* __restrict__ y, float scale,
                                       T* __restrict__ du, float* __restrict__ dbeta_rows, bool first) {
  __shared__ float shared[32];
  const int64_t b = blockIdx.x, h = b / N, r = b % N, i = r * H + h;
  const float* x = u + b * ld;
  T* g = du + b * ld;
  const int32_t t = y[r];
  float part = 0.f;
  if (t == kIgnoreIndex) {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) g[j] = from_f<T>(0.f);
  } else {
    const float bt = beta[h] * score_scale, l = score_lse[i];
    const float rs = scale * bh_responsibility(target_logp[i], loss[r], H);
    const int64_t yj = int64_t(t) - col0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float ds = bh_score_grad(bt * x[j], l, j == yj, rs);
      g[j] = from_f<T>(bt * ds);
      part += ds * x[j];
    }
  }
  if (!dbeta_rows) return;
  part = block_sum(part, shared) * score_scale;
  if (threadIdx.x == 0) dbeta_rows[i] = first ? part : dbeta_rows[i] + part;
}

template <class T>
__global__ void cast_kernel(const float* __restrict__ src, T* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_f<T>(src[i]);
}

// Block b = (r, h).
template <class T>
__global__ void rows_qnorm_backward_kernel(const float* __restrict__ dn, const float* __restrict__ mean,
                                           const float* __restrict__ rstd, const T* __restrict__ gamma, int64_t H,
                                           int64_t dv, T* __restrict__ dm, float* __restrict__ gterms) {
  __shared__ float shared[32];
  const int64_t b = blockIdx.x, r = b / H, h = b % H, dh = dv / H, o = r * dv + h * dh;
  const float rs = rstd[b];
  float sum_gx = 0.f;
  for (int64_t c = threadIdx.x; c < dh; c += blockDim.x) {
    if (gterms) gterms[o + c] = dn[o + c] * mean[o + c] * rs;
    sum_gx += to_f(gamma[h * dh + c]) * dn[o + c] * mean[o + c];
  }
  if (!dm) return;
  const float mean_gx = block_sum(sum_gx, shared) / float(dh);
  for (int64_t c = threadIdx.x; c < dh; c += blockDim.x)
    dm[o + c] = from_f<T>(bh_rmsnorm_dx(to_f(gamma[h * dh + c]) * dn[o + c], mean[o + c], rs, mean_gx));
}

unsigned grid_of(int64_t blocks, const char* what) {
  CHECK(blocks < (int64_t(1) << 31), "backward_head: ", blocks, " ", what, " exceed the CUDA grid limit");
  return unsigned(blocks);
}

const int32_t* ids_or_null(const Tensor& t) { return t.defined() ? dptr<int32_t>(t) : nullptr; }
float* f32_or_null(const Tensor& t) { return t.defined() ? dptr<float>(t) : nullptr; }

}  // namespace

void bh_rows_max(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& run_max, bool first) {
  rows_max_kernel<<<grid_of(t.N, "rows"), kThreads, 0, stream_of(ctx)>>>(dptr<float>(z), t.ld, t.cols,
                                                                        float(inv_tau), dptr<float>(run_max), first);
  CUDA_CHECK_LAUNCH();
}

void bh_rows_topk(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, int64_t k, const Tensor& list_in,
                  const Tensor& list_out, const Tensor& theta, bool first) {
  rows_topk_kernel<<<grid_of(t.N, "rows"), kThreads, 0, stream_of(ctx)>>>(
      dptr<float>(z), t.ld, t.cols, float(inv_tau), k, dptr<float>(list_in), dptr<float>(list_out),
      dptr<float>(theta), first);
  CUDA_CHECK_LAUNCH();
}

void bh_rows_weights(Ctx& ctx, const BhTile& t, const Tensor& z, double inv_tau, const Tensor& shift,
                     const Tensor& theta, const Tensor& w, const Tensor& sum, bool first) {
  dispatch_cuda_float(w.dtype, "backward_head", [&](auto tag) {
    using T = decltype(tag);
    rows_weights_kernel<T><<<grid_of(t.N, "rows"), kThreads, 0, stream_of(ctx)>>>(
        dptr<float>(z), t.ld, t.cols, float(inv_tau), dptr<float>(shift), f32_or_null(theta), dptr<T>(w),
        f32_or_null(sum), first);
    CUDA_CHECK_LAUNCH();
  });
}

void bh_rows_weights_finish(Ctx& ctx, int64_t N, int64_t dv, const Tensor& mean, const Tensor& sum,
                            const Tensor& shift, const Tensor& w_lse) {
  rows_weights_finish_kernel<<<grid_of(N, "rows"), 128, 0, stream_of(ctx)>>>(
      dptr<float>(mean), dv, dptr<float>(sum), dptr<float>(shift), dptr<float>(w_lse));
  CUDA_CHECK_LAUNCH();
}

void bh_rows_qnorm_forward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, double eps, const Tensor& mean,
                           const Tensor& gamma, const Tensor& rstd, const Tensor& out) {
  dispatch_cuda_float(out.dtype, "backward_head", [&](auto tag) {
    using T = decltype(tag);
    rows_qnorm_forward_kernel<T><<<grid_of(N * H, "row slices"), 128, 0, stream_of(ctx)>>>(
        dptr<float>(mean), dptr<T>(gamma), H, dv, float(eps), dptr<float>(rstd), dptr<T>(out));
    CUDA_CHECK_LAUNCH();
  });
}

void bh_rows_scores(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& targets,
                    const Tensor& run_max, const Tensor& run_sum, const Tensor& s_y, bool first) {
  rows_scores_kernel<<<grid_of(t.N * t.H, "rows"), kThreads, 0, stream_of(ctx)>>>(
      dptr<float>(u), t.N, t.H, t.ld, t.cols, t.col0, float(t.score_scale), dptr<float>(beta), ids_or_null(targets),
      dptr<float>(run_max), dptr<float>(run_sum), dptr<float>(s_y), first);
  CUDA_CHECK_LAUNCH();
}

void bh_rows_scores_finish(Ctx& ctx, int64_t N, int64_t H, int64_t V, const Tensor& run_max,
                           const Tensor& run_sum, const Tensor& targets, const Tensor& score_lse,
                           const Tensor& target_logp, const Tensor& loss) {
  rows_scores_finish_kernel<<<grid_of(ceil_div(N, 128), "rows"), 128, 0, stream_of(ctx)>>>(
      N, H, V, dptr<float>(run_max), dptr<float>(run_sum), ids_or_null(targets), dptr<float>(score_lse),
      dptr<float>(target_logp), f32_or_null(loss));
  CUDA_CHECK_LAUNCH();
}

void bh_rows_logprobs(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta, const Tensor& score_lse,
                      const Tensor& out) {
  rows_logprobs_kernel<<<grid_of(t.N, "rows"), kThreads, 0, stream_of(ctx)>>>(
      dptr<float>(u), t.N, t.H, t.ld, t.cols, t.col0, float(t.score_scale), dptr<float>(beta), dptr<float>(score_lse),
      dptr<float>(out), out.dim(1));
  CUDA_CHECK_LAUNCH();
}

void bh_rows_score_grad(Ctx& ctx, const BhTile& t, const Tensor& u, const Tensor& beta,
                        const Tensor& score_lse, const Tensor& target_logp, const Tensor& loss,
                        const Tensor& targets, double scale, const Tensor& du, const Tensor& dbeta_rows,
                        bool first) {
  dispatch_cuda_float(du.dtype, "backward_head", [&](auto tag) {
    using T = decltype(tag);
    rows_score_grad_kernel<T><<<grid_of(t.N * t.H, "rows"), kThreads, 0, stream_of(ctx)>>>(
        dptr<float>(u), t.N, t.H, t.ld, t.cols, t.col0, float(t.score_scale), dptr<float>(beta), dptr<float>(score_lse),
        dptr<float>(target_logp), dptr<float>(loss), dptr<int32_t>(targets), float(scale), dptr<T>(du),
        f32_or_null(dbeta_rows), first);
    CUDA_CHECK_LAUNCH();
  });
}

void bh_rows_cast(Ctx& ctx, const Tensor& src, const Tensor& dst, int64_t n) {
  if (n == 0) return;
  dispatch_cuda_float(dst.dtype, "backward_head", [&](auto tag) {
    using T = decltype(tag);
    cast_kernel<T><<<grid_of(std::min<int64_t>(ceil_div(n, kThreads), 4096), "blocks"), kThreads, 0,
                     stream_of(ctx)>>>(dptr<float>(src), dptr<T>(dst), n);
    CUDA_CHECK_LAUNCH();
  });
}

void bh_rows_qnorm_backward(Ctx& ctx, int64_t N, int64_t H, int64_t dv, const Tensor& dn, const Tensor& mean,
                            const Tensor& rstd, const Tensor& gamma, const Tensor& dm, const Tensor& gterms) {
  dispatch_cuda_float(gamma.dtype, "backward_head", [&](auto tag) {
    using T = decltype(tag);
    rows_qnorm_backward_kernel<T><<<grid_of(N * H, "row slices"), 128, 0, stream_of(ctx)>>>(
        dptr<float>(dn), dptr<float>(mean), dptr<float>(rstd), dptr<T>(gamma), H, dv,
        dm.defined() ? dptr<T>(dm) : nullptr, f32_or_null(gterms));
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
