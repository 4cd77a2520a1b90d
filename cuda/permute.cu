#include "core/ops/permute.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

// Thread per pack of N elements of out, in out order: stores are fully coalesced, and loads
// are too within each d-long row (256 bytes for d = 128 bf16), which both layouts keep whole.
template <class T, int N, class Idx>
__global__ void swap12_kernel(T* __restrict__ out, const T* __restrict__ in, Idx n1, Idx n2,
                              Idx packs_per_row, Idx total_packs) {
  const Idx stride = Idx(gridDim.x) * Idx(blockDim.x);
  for (Idx p = Idx(blockIdx.x) * Idx(blockDim.x) + Idx(threadIdx.x); p < total_packs; p += stride) {
    const Idx c = p % packs_per_row, row = p / packs_per_row;  // out row = (b, j, i)
    const Idx i = row % n1, bj = row / n1;
    const Idx j = bj % n2, b = bj / n2;
    const Idx src_row = (b * n1 + i) * n2 + j;
    store_pack<N>(out + row * packs_per_row * N + c * N,
                  load_pack<N>(in + src_row * packs_per_row * N + c * N));
  }
}

template <class T, int N>
void launch(Ctx& ctx, T* out, const T* in, int64_t n1, int64_t n2, int64_t d, int64_t numel) {
  const int threads = 256;
  const int64_t total = numel / N;
  const int64_t blocks = grid_for(total, threads);
  if (numel < (int64_t(1) << 31)) {
    swap12_kernel<T, N, int32_t><<<blocks, threads, 0, stream_of(ctx)>>>(
        out, in, int32_t(n1), int32_t(n2), int32_t(d / N), int32_t(total));
  } else {
    swap12_kernel<T, N, int64_t><<<blocks, threads, 0, stream_of(ctx)>>>(out, in, n1, n2, d / N, total);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void permute_swap12(Ctx& ctx, const Tensor& out, const Tensor& in) {
  const int64_t n1 = in.dim(1), n2 = in.dim(2), d = in.dim(3);
  dispatch_cuda_float(in.dtype, "permute", [&](auto tag) {
    using T = decltype(tag);
    T* o = dptr<T>(out);
    const T* x = dptr<T>(in);
    constexpr int V = kVec16<T>;
    if (d % V == 0 && is_aligned16(o) && is_aligned16(x)) launch<T, V>(ctx, o, x, n1, n2, d, in.numel());
    else launch<T, 1>(ctx, o, x, n1, n2, d, in.numel());
  });
}

}  // namespace attnlab::cuda
