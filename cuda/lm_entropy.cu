// Row reduction of one vocabulary tile of logits for the streaming LM-head entropy (the tile's
// GEMM is the matmul op; see core/ops/lm_entropy.h). One block per row (grid-stride over rows),
// threads stride the tile's columns (coalesced), warps merge with shuffles, then warp 0 merges
// the warps in a fixed order: deterministic, no atomics.
#include "core/ops/lm_entropy.h"
#include "core/ops/lm_entropy_math.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ EntState<float> warp_merge(EntState<float> s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const EntState<float> other{__shfl_xor_sync(0xffffffffu, s.max, o), __shfl_xor_sync(0xffffffffu, s.sum, o),
                                __shfl_xor_sync(0xffffffffu, s.wsum, o)};
    s = ent_merge(s, other);
  }
  return s;
}

__global__ void __launch_bounds__(kThreads)
    lm_entropy_stats_kernel(const float* logits, int64_t ld, int64_t width, float* state, float* entropy,
                            int64_t rows, bool first, bool last) {
  __shared__ float3 warps[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* z = logits + r * ld;
    EntState<float> s = ent_empty<float>();
    for (int64_t c = threadIdx.x; c < width; c += kThreads) s = ent_push(s, z[c]);
    s = warp_merge(s);
    __syncthreads();  // the previous row's reads of `warps` are done
    if (lane == 0) warps[warp] = make_float3(s.max, s.sum, s.wsum);
    __syncthreads();
    if (warp != 0) continue;
    s = lane < kThreads / 32 ? EntState<float>{warps[lane].x, warps[lane].y, warps[lane].z} : ent_empty<float>();
    s = warp_merge(s);
    if (lane != 0) continue;
    float* st = state + r * 3;
    if (!first) s = ent_merge(EntState<float>{st[0], st[1], st[2]}, s);
    st[0] = s.max, st[1] = s.sum, st[2] = s.wsum;
    if (last) entropy[r] = ent_plain(s);
  }
}

__global__ void __launch_bounds__(kThreads)
    lm_entropy_weighted_log_kernel(const float* logits, int64_t ld, int64_t width, float* state, float* entropy,
                                   int64_t rows, bool first, bool last) {
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* z = logits + r * ld;
    float* st = state + r * 3;
    const float lse = st[0] + logf(st[1]);  // pass 1's final state; only st[2] is written below
    float acc = 0.f;
    for (int64_t c = threadIdx.x; c < width; c += kThreads) acc += ent_term(z[c], lse, float(kLmEntropyEps));
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) {
      const float v = first ? acc : st[2] + acc;
      st[2] = v;
      if (last) entropy[r] = -v;
    }
  }
}

}  // namespace

void lm_entropy_tile(Ctx& ctx, const LmEntropyArgs& a, int64_t rows, int64_t width, int64_t ld, LmEntropyPass pass,
                     bool first, bool last) {
  const float* logits = dptr<float>(a.scratch);
  float* state = dptr<float>(a.state);
  float* entropy = dptr<float>(a.entropy);
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(rows, 132 * 8));
  if (pass == LmEntropyPass::stats)
    lm_entropy_stats_kernel<<<blocks, kThreads, 0, stream_of(ctx)>>>(logits, ld, width, state, entropy, rows, first,
                                                                     last);
  else
    lm_entropy_weighted_log_kernel<<<blocks, kThreads, 0, stream_of(ctx)>>>(logits, ld, width, state, entropy, rows,
                                                                            first, last);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::cuda
