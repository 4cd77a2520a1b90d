#include "core/ops/kv_cache_write.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

// One thread per pack of N elements of src, in src order (token-major): loads are coalesced, and
// stores are too within each d-long head row, which the cache keeps whole.
template <class T, int N>
__global__ void write_kernel(T* __restrict__ cache, const T* __restrict__ src, const int32_t* __restrict__ slots,
                             int64_t T_len, int64_t H, int64_t S_cap, int64_t packs_per_row, int64_t total_packs) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < total_packs; p += stride) {
    const int64_t c = p % packs_per_row, row = p / packs_per_row;  // src row = (b, t, h)
    const int64_t h = row % H, bt = row / H;
    const int64_t b = bt / T_len;
    const int64_t s = slots[bt];
    if (s < 0 || s >= S_cap) continue;  // documented: an out-of-range slot is skipped
    store_pack<N>(cache + ((b * H + h) * S_cap + s) * packs_per_row * N + c * N,
                  load_pack<N>(src + row * packs_per_row * N + c * N));
  }
}

template <class T, int N>
void launch(Ctx& ctx, T* cache, const T* src, const int32_t* slots, int64_t T_len, int64_t H, int64_t S_cap,
            int64_t d, int64_t numel) {
  const int threads = 256;
  const int64_t total = numel / N;
  write_kernel<T, N><<<grid_for(total, threads), threads, 0, stream_of(ctx)>>>(cache, src, slots, T_len, H, S_cap,
                                                                                d / N, total);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void kv_cache_write_forward(Ctx& ctx, const KvCacheWriteArgs& a) {
  const int64_t H = a.cache.dim(1), S_cap = a.cache.dim(2), d = a.cache.dim(3), T_len = a.src.dim(1);
  dispatch_cuda_float(a.cache.dtype, "kv_cache_write_forward", [&](auto tag) {
    using T = decltype(tag);
    T* cache = dptr<T>(a.cache);
    const T* src = dptr<T>(a.src);
    const int32_t* slots = dptr<int32_t>(a.slots);
    constexpr int V = kVec16<T>;
    if (d % V == 0 && is_aligned16(cache) && is_aligned16(src))
      launch<T, V>(ctx, cache, src, slots, T_len, H, S_cap, d, a.src.numel());
    else
      launch<T, 1>(ctx, cache, src, slots, T_len, H, S_cap, d, a.src.numel());
  });
}

}  // namespace attnlab::cuda
