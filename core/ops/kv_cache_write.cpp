#include "core/ops/kv_cache_write.h"

#include <cstring>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

void kv_cache_write_forward(Ctx& ctx, const KvCacheWriteArgs& a) {
  NVTX_RANGE(ctx, "kv_cache_write_forward");
  CHECK(a.cache.defined() && a.src.defined() && a.slots.defined(), "kv_cache_write: cache, src and slots are required");
  CHECK(a.cache.ndim == 4, "kv_cache_write: cache '", a.cache.name, "' must be [B, H, S_cap, d], got ",
        a.cache.shape_str());
  const int64_t B = a.cache.dim(0), H = a.cache.dim(1), S_cap = a.cache.dim(2), d = a.cache.dim(3);
  CHECK(a.src.ndim == 4 && a.src.dim(0) == B && a.src.dim(2) == H && a.src.dim(3) == d, "kv_cache_write: src '",
        a.src.name, "' ", a.src.shape_str(), " must be [B, T, H, d] = [", B, ", T, ", H, ", ", d, "] like cache '",
        a.cache.name, "' ", a.cache.shape_str());
  const int64_t T = a.src.dim(1);
  CHECK(a.src.dtype == a.cache.dtype, "kv_cache_write: src '", a.src.name, "' is ", dtype_name(a.src.dtype),
        ", cache '", a.cache.name, "' is ", dtype_name(a.cache.dtype));
  CHECK(a.slots.dtype == DType::i32, "kv_cache_write: slots '", a.slots.name, "' must be i32, got ",
        dtype_name(a.slots.dtype));
  check_shape(a.slots, {B, T});
  check_device(ctx.device, {&a.cache, &a.src, &a.slots});
  if (a.src.numel() == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::kv_cache_write_forward(ctx, a));
  dispatch_cpu_float(a.cache.dtype, "kv_cache_write_forward", [&](auto tag) {
    using T_ = decltype(tag);
    const int32_t* slots = a.slots.ptr<int32_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int32_t s = slots[b * T + t];
        CHECK(s >= 0 && s < S_cap, "kv_cache_write: slot ", s, " of row ", b, " token ", t,
              " is outside the cache's ", S_cap, " slots");
      }
    const T_* src = a.src.ptr<T_>();
    T_* cache = a.cache.ptr<T_>();
#pragma omp parallel for collapse(2) schedule(static) if (a.src.numel() > 65536)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t s = slots[b * T + t];
        for (int64_t h = 0; h < H; ++h)
          std::memcpy(cache + ((b * H + h) * S_cap + s) * d, src + ((b * T + t) * H + h) * d, size_t(d) * sizeof(T_));
      }
  });
}

}  // namespace attnlab
