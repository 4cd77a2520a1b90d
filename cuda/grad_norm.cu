// Global gradient norm: a fixed grid of blocks each sums the squares of a fixed set of chunks
// in double, then one block sums the per-block partials in a fixed order and writes the norm,
// the clip scale and the NaN/Inf flag. No atomics: identical bits run to run.
#include "cuda/common.cuh"
#include "cuda/param_table.cuh"
#include "cuda/reduce.cuh"
#include "optim/grad_norm.h"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;
// Stage-1 grid size. Fixed (not derived from the SM count), so the summation order, and with it
// the result, depends on nothing but the gradients, on any GPU.
constexpr int kPartials = 1024;
constexpr int kFinishThreads = 1024;
static_assert(kPartials <= kFinishThreads, "stage 2 gives each partial its own thread");

__device__ __forceinline__ double sq(float x) { return double(x) * double(x); }

__device__ double chunk_sum_of_squares(const ParamTableEntry& e, int64_t chunk) {
  const float* g = static_cast<const float*>(e.grad);
  const int64_t begin = chunk * kParamChunk;
  const int64_t end = min(e.numel, begin + kParamChunk);
  double s = 0;
  if (e.flags & kEntryGradAligned) {
    const float4* g4 = reinterpret_cast<const float4*>(g);
    const int64_t vec_end = begin + (end - begin) / 4 * 4;
    for (int64_t k = begin / 4 + threadIdx.x; k < vec_end / 4; k += kThreads) {
      const float4 v = __ldg(g4 + k);
      s += sq(v.x) + sq(v.y) + sq(v.z) + sq(v.w);
    }
    for (int64_t i = vec_end + threadIdx.x; i < end; i += kThreads) s += sq(__ldg(g + i));
  } else {
    for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) s += sq(__ldg(g + i));
  }
  return s;
}

__global__ void __launch_bounds__(kThreads)
sum_of_squares_kernel(const ParamTableEntry* __restrict__ table, int n_entries, int64_t total_chunks,
                      double* __restrict__ partial) {
  double s = 0;
  for (int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x) {
    const ParamTableEntry e = table[find_param_entry(table, n_entries, chunk)];
    s += chunk_sum_of_squares(e, chunk - e.chunk_begin);
  }
  __shared__ double shared[32];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kFinishThreads)
finish_kernel(const double* __restrict__ partial, int n_partials, double max_norm, float* __restrict__ norm,
              float* __restrict__ clip_scale, int32_t* __restrict__ nonfinite, double* __restrict__ sumsq_out) {
  __shared__ double shared[32];
  const double sumsq = block_sum(threadIdx.x < n_partials ? partial[threadIdx.x] : 0.0, shared);
  if (threadIdx.x != 0) return;
  const double n = sqrt(sumsq);
  *norm = float(n);
  if (clip_scale) *clip_scale = float(grad_clip_scale(n, max_norm));
  if (nonfinite) *nonfinite = isfinite(sumsq) ? 0 : 1;
  if (sumsq_out) *sumsq_out = sumsq;
}

}  // namespace

void grad_norm(Ctx& ctx, const ParamTable& grads, const GradNormArgs& a) {
  CHECK(grads.dtype() == DType::f32, "grad_norm: CUDA gradients are f32, got ", dtype_name(grads.dtype()));
  const int64_t chunks = grads.total_chunks();
  const int partials = int(std::max<int64_t>(1, std::min<int64_t>(chunks, kPartials)));
  // The partials live in the context's scratch workspace (stream-ordered: nothing else uses it
  // between the two launches).
  CHECK(ctx.workspace && ctx.workspace_bytes >= kPartials * sizeof(double),
        "grad_norm: the context has no scratch workspace");
  auto* partial = static_cast<double*>(ctx.workspace);
  sum_of_squares_kernel<<<partials, kThreads, 0, stream_of(ctx)>>>(grads.device_entries(), int(grads.size()),
                                                                    chunks, partial);
  CUDA_CHECK_LAUNCH();
  finish_kernel<<<1, kFinishThreads, 0, stream_of(ctx)>>>(
      partial, partials, a.max_norm, dptr<float>(a.norm),
      a.clip_scale.defined() ? dptr<float>(a.clip_scale) : nullptr,
      a.nonfinite.defined() ? dptr<int32_t>(a.nonfinite) : nullptr,
      a.sumsq.defined() ? dptr<double>(a.sumsq) : nullptr);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::cuda
