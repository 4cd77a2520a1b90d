// AdamW kernels: one tensor (its table entry passed by value) or a whole ParamTable in one
// launch. Both run the same per-chunk code, so the two forms agree bit for bit.
#include "cuda/common.cuh"
#include "cuda/param_table.cuh"
#include "optim/adamw.h"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;
static_assert(kParamChunk % (kThreads * 4) == 0, "a chunk is a whole number of float4 rounds");
constexpr int kRounds = int(kParamChunk / (kThreads * 4));

__device__ __forceinline__ void update_one(const ParamTableEntry& e, int64_t i, const AdamWCoef<float>& c,
                                           float scale, bool decay) {
  float* p = static_cast<float*>(e.param);
  float* m = static_cast<float*>(e.m);
  float* v = static_cast<float*>(e.v);
  float pi = p[i], mi = m[i], vi = v[i];
  adamw_update(pi, mi, vi, adamw_mul(static_cast<const float*>(e.grad)[i], scale), c, decay);
  p[i] = pi;
  m[i] = mi;
  v[i] = vi;
  if (e.param_bf16) static_cast<bf16_t*>(e.param_bf16)[i] = __float2bfloat16(pi);
}

__device__ __forceinline__ void update_four(float4& p, float4& m, float4& v, const float4& g,
                                            const AdamWCoef<float>& c, float scale, bool decay) {
  adamw_update(p.x, m.x, v.x, adamw_mul(g.x, scale), c, decay);
  adamw_update(p.y, m.y, v.y, adamw_mul(g.y, scale), c, decay);
  adamw_update(p.z, m.z, v.z, adamw_mul(g.z, scale), c, decay);
  adamw_update(p.w, m.w, v.w, adamw_mul(g.w, scale), c, decay);
}

__device__ __forceinline__ void store_bf16x4(void* base, int64_t index4, const float4& p) {
  bf16_t w[4] = {__float2bfloat16(p.x), __float2bfloat16(p.y), __float2bfloat16(p.z), __float2bfloat16(p.w)};
  reinterpret_cast<uint2*>(base)[index4] = *reinterpret_cast<const uint2*>(w);
}

// Elements [chunk·kParamChunk, +kParamChunk) ∩ [0, numel) of one tensor.
__device__ void update_chunk(const ParamTableEntry& e, int64_t chunk, const AdamWCoef<float>& c, float scale) {
  const int64_t begin = chunk * kParamChunk;
  const int64_t end = min(e.numel, begin + kParamChunk);
  const bool decay = e.flags & kEntryDecay;
  if (!(e.flags & kEntryAllAligned)) {
    for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) update_one(e, i, c, scale, decay);
    return;
  }
  float4* p4 = static_cast<float4*>(e.param);
  float4* m4 = static_cast<float4*>(e.m);
  float4* v4 = static_cast<float4*>(e.v);
  const float4* g4 = static_cast<const float4*>(e.grad);
  if (end - begin == kParamChunk) {
    // Full chunk: a fixed trip count, every load issued before any math, so each thread keeps
    // 4 × kRounds 16-byte loads in flight.
    float4 p[kRounds], m[kRounds], v[kRounds], g[kRounds];
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      const int64_t k = begin / 4 + r * kThreads + threadIdx.x;
      p[r] = p4[k];
      m[r] = m4[k];
      v[r] = v4[k];
      g[r] = g4[k];
    }
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      const int64_t k = begin / 4 + r * kThreads + threadIdx.x;
      update_four(p[r], m[r], v[r], g[r], c, scale, decay);
      p4[k] = p[r];
      m4[k] = m[r];
      v4[k] = v[r];
      if (e.param_bf16) store_bf16x4(e.param_bf16, k, p[r]);
    }
    return;
  }
  // The tensor's last, partial chunk: float4 while whole groups of 4 remain, then scalars.
  const int64_t vec_end = begin + (end - begin) / 4 * 4;
  for (int64_t k = begin / 4 + threadIdx.x; k < vec_end / 4; k += kThreads) {
    float4 p = p4[k], m = m4[k], v = v4[k];
    update_four(p, m, v, g4[k], c, scale, decay);
    p4[k] = p;
    m4[k] = m;
    v4[k] = v;
    if (e.param_bf16) store_bf16x4(e.param_bf16, k, p);
  }
  for (int64_t i = vec_end + threadIdx.x; i < end; i += kThreads) update_one(e, i, c, scale, decay);
}

template <bool kTable>
__global__ void __launch_bounds__(kThreads)
adamw_kernel(const ParamTableEntry* __restrict__ table, int n_entries, ParamTableEntry single,
             int64_t total_chunks, AdamWCoef<float> c, const float* __restrict__ grad_scale,
             const int32_t* __restrict__ skip) {
  if (skip && *skip != 0) return;
  const float scale = grad_scale ? *grad_scale : 1.f;
  for (int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x) {
    if constexpr (kTable) {
      const ParamTableEntry e = table[find_param_entry(table, n_entries, chunk)];
      update_chunk(e, chunk - e.chunk_begin, c, scale);
    } else {
      update_chunk(single, chunk, c, scale);
    }
  }
}

template <bool kTable>
void launch(Ctx& ctx, const AdamWArgs& a, const ParamTableEntry* table, int n_entries,
            const ParamTableEntry& single, int64_t total_chunks) {
  if (total_chunks == 0) return;
  const int64_t blocks = std::min<int64_t>(total_chunks, int64_t(sm_count_of(ctx)) * 8);
  const float* scale = a.grad_scale.defined() ? dptr<float>(a.grad_scale) : nullptr;
  const int32_t* skip = a.skip.defined() ? dptr<int32_t>(a.skip) : nullptr;
  adamw_kernel<kTable><<<unsigned(blocks), kThreads, 0, stream_of(ctx)>>>(
      table, n_entries, single, total_chunks, adamw_coef<float>(a.hyper), scale, skip);
  CUDA_CHECK_LAUNCH();
}

void check_f32(DType t) {
  CHECK(t == DType::f32, "adamw_step: CUDA master weights, gradients and moments are f32, got ",
        dtype_name(t));
}

}  // namespace

void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamSlot& slot) {
  check_f32(slot.grad.dtype);
  const ParamTableEntry e = make_param_entry(slot);
  launch<false>(ctx, a, nullptr, 0, e, ceil_div(e.numel, kParamChunk));
}

void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamTable& table) {
  check_f32(table.dtype());
  launch<true>(ctx, a, table.device_entries(), int(table.size()), ParamTableEntry{},
               table.total_chunks());
}

}  // namespace attnlab::cuda
