// λ of differential attention on the device (core/ops/diff_lambda.h): one block evaluates the
// paper preset's two dot products (f32, the butterfly block_sum: a fixed order, so forward and
// backward compute the same e1 and e2); the seed preset is one thread per head.
#include "core/ops/diff_lambda.h"
#include "core/ops/diff_lambda_math.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
struct PaperParams {
  const T* v[4] = {nullptr, nullptr, nullptr, nullptr};  // λq1, λk1, λq2, λk2
  float* grad[4] = {nullptr, nullptr, nullptr, nullptr};  // same order; null: frozen
  int64_t d = 0;
};

// λq1·λk1 and λq2·λk2 in f32; every thread of the (single) block gets both.
template <class T>
__device__ __forceinline__ void paper_dots(const PaperParams<T>& p, float& dot1, float& dot2) {
  __shared__ float red[32];
  float s1 = 0.f, s2 = 0.f;
  for (int64_t j = threadIdx.x; j < p.d; j += blockDim.x) {
    s1 += to_f(p.v[0][j]) * to_f(p.v[1][j]);
    s2 += to_f(p.v[2][j]) * to_f(p.v[3][j]);
  }
  dot1 = block_sum(s1, red);
  dot2 = block_sum(s2, red);
}

template <class T>
__global__ void __launch_bounds__(kThreads) paper_forward_kernel(float* __restrict__ lambda, PaperParams<T> p,
                                                                 float lambda_init) {
  float dot1, dot2;
  paper_dots(p, dot1, dot2);
  if (threadIdx.x == 0) *lambda = diff_lambda_paper<float>(dot1, dot2, lambda_init);
}

template <class T>
__global__ void __launch_bounds__(kThreads) paper_backward_kernel(PaperParams<T> p, const float* __restrict__ dlambda) {
  float dot1, dot2;
  paper_dots(p, dot1, dot2);
  const float e1 = hd_exp(dot1), e2 = hd_exp(dot2), dl = *dlambda;
  constexpr int partner[4] = {1, 0, 3, 2};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (p.grad[i] == nullptr) continue;
    const float coef = diff_lambda_paper_coef<float>(i, dl, e1, e2);
    const T* other = p.v[partner[i]];
    for (int64_t j = threadIdx.x; j < p.d; j += blockDim.x) p.grad[i][j] += coef * to_f(other[j]);
  }
}

template <class T>
__global__ void seed_forward_kernel(float* __restrict__ lambda, const T* __restrict__ raw, int64_t H) {
  const int64_t h = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (h < H) lambda[h] = diff_lambda_seed<float>(to_f(raw[h]));
}

template <class T>
__global__ void seed_backward_kernel(float* __restrict__ draw, const float* __restrict__ dlambda,
                                     const T* __restrict__ raw, int64_t H) {
  const int64_t h = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (h < H) draw[h] += diff_lambda_seed_grad<float>(dlambda[h], to_f(raw[h]));
}

template <class T>
PaperParams<T> paper_params(const Tensor& q1, const Tensor& k1, const Tensor& q2, const Tensor& k2) {
  PaperParams<T> p;
  const Tensor* v[4] = {&q1, &k1, &q2, &k2};
  for (int i = 0; i < 4; ++i) p.v[i] = dptr<T>(*v[i]);
  p.d = q1.numel();
  return p;
}

unsigned seed_blocks(int64_t H) { return unsigned(ceil_div(H, kThreads)); }

}  // namespace

void diff_lambda_forward(Ctx& ctx, const DiffLambdaArgs& a) {
  const DType pt = a.preset == DiffLambdaPreset::paper ? a.q1.dtype : a.raw.dtype;
  dispatch_cuda_float(pt, "diff_lambda_forward", [&](auto tag) {
    using T = decltype(tag);
    if (a.preset == DiffLambdaPreset::paper) {
      paper_forward_kernel<T><<<1, kThreads, 0, stream_of(ctx)>>>(
          dptr<float>(a.lambda), paper_params<T>(a.q1, a.k1, a.q2, a.k2), float(a.lambda_init));
    } else {
      const int64_t H = a.raw.numel();
      seed_forward_kernel<T><<<seed_blocks(H), kThreads, 0, stream_of(ctx)>>>(dptr<float>(a.lambda), dptr<T>(a.raw), H);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void diff_lambda_backward(Ctx& ctx, const DiffLambdaBackwardArgs& a) {
  const DType pt = a.preset == DiffLambdaPreset::paper ? a.q1.dtype : a.raw.dtype;
  dispatch_cuda_float(pt, "diff_lambda_backward", [&](auto tag) {
    using T = decltype(tag);
    if (a.preset == DiffLambdaPreset::paper) {
      PaperParams<T> p = paper_params<T>(a.q1, a.k1, a.q2, a.k2);
      const Tensor* g[4] = {&a.dq1, &a.dk1, &a.dq2, &a.dk2};
      for (int i = 0; i < 4; ++i) p.grad[i] = dptr_or_null<float>(*g[i]);
      if (!(p.grad[0] || p.grad[1] || p.grad[2] || p.grad[3])) return;
      paper_backward_kernel<T><<<1, kThreads, 0, stream_of(ctx)>>>(p, dptr<float>(a.dlambda));
    } else {
      if (!a.draw.defined()) return;
      const int64_t H = a.raw.numel();
      seed_backward_kernel<T><<<seed_blocks(H), kThreads, 0, stream_of(ctx)>>>(dptr<float>(a.draw),
                                                                              dptr<float>(a.dlambda),
                                                                              dptr<T>(a.raw), H);
    }
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
