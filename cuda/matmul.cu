#include <climits>

#include "core/ops/matmul.h"
#include "cuda/common.cuh"
#include "cuda/matmul_plan.cuh"

namespace attnlab::cuda {

namespace {

// bias_grad, deterministic without float atomics: the rows are cut into `splits` fixed chunks;
// block (column tile, chunk) sums its chunk for kCols·VEC columns (a warp reads consecutive
// elements of a row, 16 bytes per thread when the width allows; the kRowLanes warps stride over
// the chunk's rows, then add their partials in a fixed order). With one chunk the block adds
// straight into dbias; otherwise it writes partial[chunk][col] into the ctx workspace
// (stream-ordered scratch, free between GEMMs) and a second kernel adds the chunks in order.
// Splitting rows is what keeps a 768-column bias from running on a handful of the 132 SMs.
// (Measured on H100 at 8192 rows: one block per column tile took 64 µs for 768 columns; this
// takes 15 µs. A single-kernel variant reducing the chunks through a thread-block cluster's
// distributed shared memory was slower still, 17-55 µs, with its narrower row segments.)
constexpr int kCols = 32;     // threads across columns (each owning VEC adjacent columns)
constexpr int kRowLanes = 8;  // threads across rows

// VEC adjacent elements of one row: one 16-byte load when VEC > 1 (the launcher checks alignment).
template <class T, int VEC>
__device__ __forceinline__ void load_row(const T* p, float (&out)[VEC]) {
  if constexpr (VEC == 1) {
    out[0] = to_f(*p);
  } else {
    static_assert(VEC * sizeof(T) == 16, "vector loads are 16 bytes");
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int e = 0; e < VEC; ++e) out[e] = to_f(v[e]);
  }
}

template <class T, int VEC>
__global__ void __launch_bounds__(kCols* kRowLanes)
    bias_grad_partial_kernel(const T* __restrict__ dy, float* __restrict__ partial,
                             float* __restrict__ dbias, int64_t rows, int64_t cols, int64_t chunk) {
  constexpr int kTile = kCols * VEC;
  __shared__ float lanes[kRowLanes][kTile + 1];
  const int64_t col0 = (int64_t(blockIdx.x) * kCols + threadIdx.x) * VEC;
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = min(rows, r0 + chunk);
  // Four independent accumulator sets keep four loads in flight per thread.
  float s[4][VEC];
#pragma unroll
  for (int u = 0; u < 4; ++u)
#pragma unroll
    for (int e = 0; e < VEC; ++e) s[u][e] = 0.f;
  if (col0 < cols) {  // VEC > 1 only when cols % VEC == 0: the whole vector is in range
    const T* p = dy + col0;
    int64_t r = r0 + threadIdx.y;
    for (; r + 3 * kRowLanes < r1; r += 4 * kRowLanes) {
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        float v[VEC];
        load_row<T, VEC>(p + (r + u * kRowLanes) * cols, v);
#pragma unroll
        for (int e = 0; e < VEC; ++e) s[u][e] += v[e];
      }
    }
    for (; r < r1; r += kRowLanes) {
      float v[VEC];
      load_row<T, VEC>(p + r * cols, v);
#pragma unroll
      for (int e = 0; e < VEC; ++e) s[0][e] += v[e];
    }
  }
#pragma unroll
  for (int e = 0; e < VEC; ++e)
    lanes[threadIdx.y][threadIdx.x * VEC + e] = (s[0][e] + s[1][e]) + (s[2][e] + s[3][e]);
  __syncthreads();
  for (int c = threadIdx.y * kCols + threadIdx.x; c < kTile; c += kCols * kRowLanes) {
    const int64_t col = int64_t(blockIdx.x) * kTile + c;
    if (col >= cols) continue;
    float total = 0.f;
#pragma unroll
    for (int i = 0; i < kRowLanes; ++i) total += lanes[i][c];
    if (partial) partial[int64_t(blockIdx.y) * cols + col] = total;
    else dbias[col] += total;
  }
}

// dbias[col] += Σ_chunk partial[chunk][col]: the kRowLanes warps take every kRowLanes-th chunk,
// then their sums are added in a fixed order.
__global__ void __launch_bounds__(kCols* kRowLanes)
    bias_grad_combine_kernel(const float* __restrict__ partial, float* __restrict__ dbias,
                             int64_t cols, int splits) {
  __shared__ float lanes[kRowLanes][kCols + 1];
  const int64_t col = int64_t(blockIdx.x) * kCols + threadIdx.x;
  float sum = 0.f;
  if (col < cols) {
#pragma unroll 4
    for (int i = threadIdx.y; i < splits; i += kRowLanes) sum += partial[int64_t(i) * cols + col];
  }
  lanes[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float total = 0.f;
#pragma unroll
    for (int i = 0; i < kRowLanes; ++i) total += lanes[i][threadIdx.x];
    dbias[col] += total;
  }
}

int sm_count(const Ctx& ctx) {
  int n = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, ctx.device_index));
  return n;
}

}  // namespace

void matmul(Ctx& ctx, const MatmulArgs& a) {
  CHECK(ctx.cublaslt != nullptr, "matmul: the CUDA ctx has no cuBLASLt handle");
  // cuBLASLt's compute type is fp32 (CUBLAS_COMPUTE_32F*): the double scalars round to float here.
  const float alpha = float(a.alpha), beta = float(a.beta);
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
  float* partial = nullptr;
  int n_splits = 1;
  dispatch_cuda_float(dy.dtype, "bias_grad", [&](auto t) {
    using T = decltype(t);
    constexpr int kVec = 16 / sizeof(T);
    const bool vec = cols % kVec == 0 && reinterpret_cast<uintptr_t>(dy.data) % 16 == 0;
    const int64_t tile = vec ? kCols * kVec : kCols, tiles = ceil_div(cols, tile);
    CHECK(tiles <= INT_MAX, "bias_grad: ", cols, " columns is too many");
    // ~4 blocks per SM, chunks of >= 128 rows, partials within the workspace.
    int64_t splits = std::min(ceil_div(4 * sm_count(ctx), tiles), ceil_div(rows, 128));
    splits = std::min<int64_t>(splits, int64_t(ctx.workspace_bytes / (sizeof(float) * size_t(cols))));
    splits = std::max<int64_t>(1, std::min<int64_t>(splits, 65535));
    if (!ctx.workspace) splits = 1;
    const int64_t chunk = ceil_div(rows, splits);
    partial = splits > 1 ? static_cast<float*>(ctx.workspace) : nullptr;
    n_splits = int(splits);
    const dim3 grid{unsigned(tiles), unsigned(splits)}, block{kCols, kRowLanes};
    if (vec)
      bias_grad_partial_kernel<T, kVec><<<grid, block, 0, stream_of(ctx)>>>(dptr<T>(dy), partial, out,
                                                                          rows, cols, chunk);
    else
      bias_grad_partial_kernel<T, 1><<<grid, block, 0, stream_of(ctx)>>>(dptr<T>(dy), partial, out,
                                                                       rows, cols, chunk);
    CUDA_CHECK_LAUNCH();
  });
  if (partial) {
    const dim3 block{kCols, kRowLanes};
    bias_grad_combine_kernel<<<unsigned(ceil_div(cols, kCols)), block, 0, stream_of(ctx)>>>(
        partial, out, cols, n_splits);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace attnlab::cuda
