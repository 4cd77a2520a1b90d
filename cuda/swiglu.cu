#include "core/ops/swiglu.h"
#include "core/ops/swiglu_math.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

// One block per row (grid-stride over rows), threads over the row's packs of N columns. Rows
// rather than a flat index because gate and up are strided (2I apart in the fused layout);
// this also avoids a 64-bit division per element. N > 1 only when I % N == 0 and every base
// pointer is 16-byte aligned, so every row start is aligned too.
template <class T, int N>
__global__ void swiglu_forward_kernel(T* h, const T* gate, const T* up, int64_t in_stride,
                                      int64_t rows, int64_t cols) {
  const int64_t packs = cols / N;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* g = gate + r * in_stride;
    const T* u = up + r * in_stride;
    T* hr = h + r * cols;
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
      const Pack<T, N> gv = load_pack<N>(g + p * N), uv = load_pack<N>(u + p * N);
      Pack<T, N> hv;
#pragma unroll
      for (int k = 0; k < N; ++k) hv.v[k] = from_f<T>(swiglu_value<float>(to_f(gv.v[k]), to_f(uv.v[k])));
      store_pack<N>(hr + p * N, hv);
    }
  }
}

// No __restrict__: dgate may be gate and dup may be up (in place); each thread reads its
// elements before writing the same positions.
template <class T, int N>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dh, const T* gate, const T* up,
                                       int64_t in_stride, int64_t grad_stride, int64_t rows,
                                       int64_t cols) {
  const int64_t packs = cols / N;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* g = gate + r * in_stride;
    const T* u = up + r * in_stride;
    const T* dhr = dh + r * cols;
    T* dg = dgate + r * grad_stride;
    T* du = dup + r * grad_stride;
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
      const Pack<T, N> gv = load_pack<N>(g + p * N), uv = load_pack<N>(u + p * N);
      const Pack<T, N> dv = load_pack<N>(dhr + p * N);
      Pack<T, N> dgv, duv;
#pragma unroll
      for (int k = 0; k < N; ++k) {
        float da, dupv;
        swiglu_grad<float>(to_f(gv.v[k]), to_f(uv.v[k]), to_f(dv.v[k]), &da, &dupv);
        dgv.v[k] = from_f<T>(da);
        duv.v[k] = from_f<T>(dupv);
      }
      store_pack<N>(dg + p * N, dgv);
      store_pack<N>(du + p * N, duv);
    }
  }
}

// 128 threads keep the last, partial sweep of a wide row small (I = 8960 bf16: 1120 packs =
// 8.75 sweeps); narrow rows get one warp-rounded sweep.
int threads_for(int64_t packs) {
  return int(std::min<int64_t>(128, std::max<int64_t>(32, ceil_div(packs, 32) * 32)));
}
int64_t blocks_for(int64_t rows) { return std::max<int64_t>(1, std::min<int64_t>(rows, 1 << 20)); }

}  // namespace

void swiglu_forward(Ctx& ctx, const SwigluArgs& a) {
  const int64_t rows = a.h.dim(0), cols = a.h.dim(1);
  if (rows == 0 || cols == 0) return;
  const SwigluOperands in = swiglu_operands(a.layout, a.gate, a.up, a.gate_up, cols);
  dispatch_cuda_float(a.h.dtype, "swiglu_forward", [&](auto tag) {
    using T = decltype(tag);
    T* h = dptr<T>(a.h);
    const T* gate = static_cast<const T*>(in.gate);
    const T* up = static_cast<const T*>(in.up);
    constexpr int V = kVec16<T>;
    const bool vec = cols % V == 0 && is_aligned16(h) && is_aligned16(gate) && is_aligned16(up);
    if (vec) {
      swiglu_forward_kernel<T, V><<<blocks_for(rows), threads_for(cols / V), 0, stream_of(ctx)>>>(
          h, gate, up, in.stride, rows, cols);
    } else {
      swiglu_forward_kernel<T, 1><<<blocks_for(rows), threads_for(cols), 0, stream_of(ctx)>>>(
          h, gate, up, in.stride, rows, cols);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void swiglu_backward(Ctx& ctx, const SwigluBackwardArgs& a) {
  const int64_t rows = a.dh.dim(0), cols = a.dh.dim(1);
  if (rows == 0 || cols == 0) return;
  const SwigluOperands in = swiglu_operands(a.layout, a.gate, a.up, a.gate_up, cols);
  const SwigluOperands grad = swiglu_operands(a.layout, a.dgate, a.dup, a.dgate_up, cols);
  dispatch_cuda_float(a.dh.dtype, "swiglu_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* dh = dptr<T>(a.dh);
    const T* gate = static_cast<const T*>(in.gate);
    const T* up = static_cast<const T*>(in.up);
    T* dgate = static_cast<T*>(grad.gate);
    T* dup = static_cast<T*>(grad.up);
    constexpr int V = kVec16<T>;
    const bool vec = cols % V == 0 && is_aligned16(dh) && is_aligned16(gate) && is_aligned16(up) &&
                     is_aligned16(dgate) && is_aligned16(dup);
    if (vec) {
      swiglu_backward_kernel<T, V><<<blocks_for(rows), threads_for(cols / V), 0, stream_of(ctx)>>>(
          dgate, dup, dh, gate, up, in.stride, grad.stride, rows, cols);
    } else {
      swiglu_backward_kernel<T, 1><<<blocks_for(rows), threads_for(cols), 0, stream_of(ctx)>>>(
          dgate, dup, dh, gate, up, in.stride, grad.stride, rows, cols);
    }
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
