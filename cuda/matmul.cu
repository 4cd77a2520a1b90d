#include <climits>

#include "core/ops/matmul.h"
#include "cuda/common.cuh"
#include "cuda/matmul_plan.cuh"

namespace attnlab::cuda {

namespace {

// bias_grad: one block per tile of kCols columns; the block's kRowLanes warps stride over all
// rows (lane = column, so each warp reads kCols consecutive elements of a row), then the warps'
// partial sums are added in a fixed order. Every column's sum has one fixed order: deterministic
// without atomics, and no scratch beyond shared memory.
constexpr int kCols = 32;
constexpr int kRowLanes = 16;

template <class T>
__global__ void __launch_bounds__(kCols* kRowLanes)
    bias_grad_kernel(const T* __restrict__ dy, float* __restrict__ dbias, int64_t rows, int64_t cols) {
  __shared__ float partial[kRowLanes][kCols + 1];
  const int64_t col = int64_t(blockIdx.x) * kCols + threadIdx.x;
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  if (col < cols) {
    const T* p = dy + col;
    // Four independent accumulators keep four loads in flight per thread.
    int64_t r = threadIdx.y;
    for (; r + 3 * kRowLanes < rows; r += 4 * kRowLanes) {
      s0 += to_f(p[r * cols]);
      s1 += to_f(p[(r + kRowLanes) * cols]);
      s2 += to_f(p[(r + 2 * kRowLanes) * cols]);
      s3 += to_f(p[(r + 3 * kRowLanes) * cols]);
    }
    for (; r < rows; r += kRowLanes) s0 += to_f(p[r * cols]);
  }
  partial[threadIdx.y][threadIdx.x] = (s0 + s1) + (s2 + s3);
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float total = 0.f;
#pragma unroll
    for (int i = 0; i < kRowLanes; ++i) total += partial[i][threadIdx.x];
    dbias[col] += total;
  }
}

}  // namespace

void matmul(Ctx& ctx, const MatmulArgs& a) {
  CHECK(ctx.cublaslt != nullptr, "matmul: the CUDA ctx has no cuBLASLt handle");
  const float alpha = a.alpha, beta = a.beta;
  with_matmul_plan(ctx, a, [&](MatmulPlan& plan) {
    if (plan.has_bias)  // the descriptor is shared by calls of this plan; its bias changes per call
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                  &a.bias.data, sizeof(a.bias.data)));
    // cuBLASLt's first operand is B's memory, its second A's (see matmul_plan.cu).
    CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx.cublaslt), plan.op, &alpha,
                                a.b.data, plan.first, a.a.data, plan.second, &beta, a.c.data,
                                plan.out, a.c.data, plan.out, &plan.algo, ctx.workspace,
                                ctx.workspace_bytes, stream_of(ctx)));
  });
}

void bias_grad(Ctx& ctx, const Tensor& dy, const Tensor& dbias, int64_t rows, int64_t cols) {
  CHECK(dy.numel() == rows * cols, "bias_grad: dy '", dy.name, "' ", dy.shape_str(), " is not ",
        rows, "x", cols);
  CHECK(dbias.numel() == cols, "bias_grad: dbias '", dbias.name, "' ", dbias.shape_str(),
        " must have ", cols, " elements");
  if (rows == 0 || cols == 0) return;
  float* out = dptr<float>(dbias);
  dispatch_cuda_float(dy.dtype, "bias_grad", [&](auto t) {
    using T = decltype(t);
    const dim3 block(kCols, kRowLanes);
    const int64_t blocks = ceil_div(cols, kCols);
    CHECK(blocks <= INT_MAX, "bias_grad: ", cols, " columns is too many");
    bias_grad_kernel<T><<<unsigned(blocks), block, 0, stream_of(ctx)>>>(dptr<T>(dy), out, rows, cols);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
