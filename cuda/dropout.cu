#include "core/ops/dropout.h"
#include "core/ops/dropout_math.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

// One thread per Philox counter c: its four draws serve elements 4c + l − offset (l = 0..3), so
// each Philox evaluation is used four times whatever the offset. When the offset is a multiple
// of 4 and the pointers are aligned, those four elements are one pack (16 B f32, 8 B bf16).
template <class T, bool kPacked>
__global__ void dropout_kernel(T* out, const T* in, int64_t n, uint64_t seed, uint64_t offset, uint32_t threshold,
                               float scale) {
  const uint64_t first = offset >> 2, last = (offset + uint64_t(n) - 1) >> 2;
  for (uint64_t c = first + blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; c <= last;
       c += uint64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32(c, seed);
    const int64_t i0 = int64_t(4 * c - offset);  // may be negative (< 0 only for the first counter)
    if (kPacked && i0 + 4 <= n) {                // i0 is a multiple of 4 and ≥ 0 here
      float v[4];
      load_floats<4>(v, in + i0, 0);
#pragma unroll
      for (int l = 0; l < 4; ++l) v[l] = dropout_keeps(r.v[l], threshold) ? v[l] * scale : 0.f;
      store_floats<4>(out + i0, 0, v);
      continue;
    }
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const int64_t i = i0 + l;
      if (i < 0 || i >= n) continue;
      out[i] = dropout_keeps(r.v[l], threshold) ? from_f<T>(to_f(in[i]) * scale) : from_f<T>(0.f);
    }
  }
}

}  // namespace

void dropout_apply(Ctx& ctx, const Tensor& out, const Tensor& in, double p, uint64_t rng_offset) {
  dispatch_cuda_float(in.dtype, "dropout", [&](auto t) {
    using T = decltype(t);
    const int64_t n = in.numel();
    const uint64_t counters = ((rng_offset + uint64_t(n) - 1) >> 2) - (rng_offset >> 2) + 1;
    const int block = 256;
    const int64_t grid = std::max<int64_t>(1, std::min<int64_t>(ceil_div(int64_t(counters), block), 132 * 16));
    const uint32_t threshold = dropout_threshold(p);
    const float scale = float(1.0 / (1.0 - p));
    const uintptr_t align = 4 * sizeof(T);
    const bool packed = (rng_offset & 3) == 0 && reinterpret_cast<uintptr_t>(in.data) % align == 0 &&
                        reinterpret_cast<uintptr_t>(out.data) % align == 0;
    if (packed)
      dropout_kernel<T, true>
          <<<grid, block, 0, stream_of(ctx)>>>(dptr<T>(out), dptr<T>(in), n, ctx.seed, rng_offset, threshold, scale);
    else
      dropout_kernel<T, false>
          <<<grid, block, 0, stream_of(ctx)>>>(dptr<T>(out), dptr<T>(in), n, ctx.seed, rng_offset, threshold, scale);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
