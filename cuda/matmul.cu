#include <cooperative_groups.h>

#include <climits>

#include "core/ops/matmul.h"
#include "cuda/common.cuh"
#include "cuda/matmul_plan.cuh"

namespace cg = cooperative_groups;

namespace attnlab::cuda {

namespace {

// bias_grad, deterministic without float atomics or scratch: block (column tile, chunk) sums one
// of kChunks fixed row chunks of its tile; the kChunks blocks of a tile form one thread-block
// cluster and block 0 of it adds their partials, read from the others' shared memory
// (Hopper distributed shared memory), in rank order. Within a block: TPR threads span the tile's
// columns (VEC adjacent columns each, one 16-byte load per row when the width allows), the rest
// stride over rows; row lanes are combined by fixed shuffles, then warps in order.
constexpr int kThreads = 512;
constexpr int kChunks = 8;  // cluster size: the portable maximum
constexpr int kWarps = kThreads / 32;

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

template <class T, int VEC, int TPR>
__global__ void __cluster_dims__(1, kChunks, 1) __launch_bounds__(kThreads)
    bias_grad_kernel(const T* __restrict__ dy, float* __restrict__ dbias, int64_t rows, int64_t cols) {
  constexpr int kTile = TPR * VEC, kRowLanes = kThreads / TPR;
  __shared__ float warp_sums[kWarps][kTile];
  __shared__ float block_sum[kTile];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int tx = tid % TPR, row_lane = tid / TPR;
  const int64_t col0 = int64_t(blockIdx.x) * kTile + int64_t(tx) * VEC;
  const int64_t chunk = (rows + kChunks - 1) / kChunks;
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = min(rows, r0 + chunk);

  // Four independent accumulator sets keep four loads in flight per thread.
  float s[4][VEC];
#pragma unroll
  for (int u = 0; u < 4; ++u)
#pragma unroll
    for (int e = 0; e < VEC; ++e) s[u][e] = 0.f;
  if (col0 < cols) {  // VEC > 1 only when cols % VEC == 0: the whole vector is in range
    const T* p = dy + col0;
    int64_t r = r0 + row_lane;
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
  float t[VEC];
#pragma unroll
  for (int e = 0; e < VEC; ++e) {
    t[e] = (s[0][e] + s[1][e]) + (s[2][e] + s[3][e]);
    // The warp's row lanes of one column sit TPR lanes apart.
#pragma unroll
    for (int o = TPR; o < 32; o <<= 1) t[e] += __shfl_xor_sync(0xffffffffu, t[e], o);
  }
  if (lane < TPR)
#pragma unroll
    for (int e = 0; e < VEC; ++e) warp_sums[warp][lane * VEC + e] = t[e];
  __syncthreads();
  if (tid < kTile) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w][tid];
    block_sum[tid] = total;
  }
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every block's block_sum is written
  if (cluster.block_rank() == 0 && tid < kTile) {
    const int64_t col = int64_t(blockIdx.x) * kTile + tid;
    float total = 0.f;
#pragma unroll
    for (int b = 0; b < kChunks; ++b) total += cluster.map_shared_rank(block_sum, b)[tid];
    if (col < cols) dbias[col] += total;
  }
  cluster.sync();  // the other blocks' shared memory stays alive until block 0 has read it
}

template <class T, int VEC, int TPR>
void launch_bias_grad(Ctx& ctx, const T* dy, float* dbias, int64_t rows, int64_t cols) {
  const int64_t tiles = ceil_div(cols, TPR * VEC);
  CHECK(tiles <= INT_MAX, "bias_grad: ", cols, " columns is too many");
  bias_grad_kernel<T, VEC, TPR><<<dim3{unsigned(tiles), unsigned(kChunks)}, kThreads, 0,
                                  stream_of(ctx)>>>(dy, dbias, rows, cols);
  CUDA_CHECK_LAUNCH();
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
    constexpr int kVec = 16 / sizeof(T);
    // 16-byte loads need every row to start 16-byte aligned; 4 threads then cover a 64-byte
    // stretch of a row, so a 768-wide bias still spreads over 24 tiles × 8 chunks of blocks.
    if (cols % kVec == 0 && reinterpret_cast<uintptr_t>(dy.data) % 16 == 0)
      launch_bias_grad<T, kVec, 4>(ctx, dptr<T>(dy), out, rows, cols);
    else
      launch_bias_grad<T, 1, 32>(ctx, dptr<T>(dy), out, rows, cols);
  });
}

}  // namespace attnlab::cuda
