#include "core/models/kv_cache.h"

#include <algorithm>

#include "core/memory.h"

namespace attnlab {

size_t KvCache::bytes_for(DType dt, int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity,
                          int64_t head_dim) {
  const size_t one = Arena::aligned(size_t(batch * kv_heads * capacity * head_dim) * dtype_size(dt));
  return std::max<size_t>(2 * size_t(layers) * one, Arena::kAlign);
}

KvCache::KvCache(const Ctx& ctx, DType dt, int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity,
                 int64_t head_dim)
    : KvCache(ctx, dt, batch, capacity,
              std::vector<KvCacheShape>(size_t(std::max<int64_t>(layers, 0)), {kv_heads, head_dim, kv_heads, head_dim})) {
  CHECK(layers > 0, "KV cache: sizes must be positive, got layers ", layers);
}

KvCache::KvCache(const Ctx& ctx, DType dt, int64_t batch, int64_t capacity, const std::vector<KvCacheShape>& layers)
    : batch_(batch), capacity_(capacity), dtype_(dt) {
  CHECK(!layers.empty() && batch > 0 && capacity > 0, "KV cache: sizes must be positive, got layers ", layers.size(),
        ", batch ", batch, ", capacity ", capacity);
  size_t bytes = Arena::kAlign;
  for (const KvCacheShape& s : layers) {
    CHECK(s.k_heads > 0 && s.k_dim > 0 && s.v_heads > 0 && s.v_dim > 0, "KV cache: sizes must be positive, got kv ",
          "heads ", s.k_heads, ", head dim ", s.k_dim, ", value heads ", s.v_heads, ", value dim ", s.v_dim);
    bytes += Arena::aligned(size_t(batch * s.k_heads * capacity * s.k_dim) * dtype_size(dt)) +
             Arena::aligned(size_t(batch * s.v_heads * capacity * s.v_dim) * dtype_size(dt));
  }
  arena_ = Arena(ctx.device, bytes);
  for (const KvCacheShape& s : layers) {
    k_.push_back(arena_.alloc(dt, {batch, s.k_heads, capacity, s.k_dim}, "kv_cache.k"));
    v_.push_back(arena_.alloc(dt, {batch, s.v_heads, capacity, s.v_dim}, "kv_cache.v"));
  }
  reset(ctx);
}

KvCache KvCache::for_config(const Ctx& ctx, const ModelConfig& c, DType dt, int64_t batch, int64_t capacity) {
  return KvCache(ctx, dt, c.num_layers, batch, c.num_kv_heads, capacity, c.head_dim);
}

const Tensor& KvCache::k(int64_t layer) const {
  CHECK(layer >= 0 && layer < layers(), "KV cache: layer ", layer, " of ", layers());
  return k_[size_t(layer)];
}
const Tensor& KvCache::v(int64_t layer) const {
  CHECK(layer >= 0 && layer < layers(), "KV cache: layer ", layer, " of ", layers());
  return v_[size_t(layer)];
}

int64_t KvCache::max_length() const {
  return lengths_.empty() ? 0 : *std::max_element(lengths_.begin(), lengths_.end());
}

void KvCache::set_lengths(const std::vector<int64_t>& lengths) {
  CHECK(int64_t(lengths.size()) == batch_, "KV cache: ", lengths.size(), " lengths for a batch of ", batch_);
  for (size_t b = 0; b < lengths.size(); ++b)
    CHECK(lengths[b] >= 0 && lengths[b] <= capacity_, "KV cache: sequence ", b, " would hold ", lengths[b],
          " tokens; the cache holds ", capacity_, " per sequence");
  lengths_ = lengths;
}

void KvCache::reset(const Ctx& ctx) {
  lengths_.assign(size_t(batch_), 0);
  // One memset over the whole arena: K and V of every layer are contiguous in it.
  if (arena_.capacity() > 0) {
    Tensor all(k_.front().data, DType::u32, arena_.device(), {int64_t(arena_.used() / 4)}, "kv_cache");
    zero_tensor(ctx, all);
  }
}

}  // namespace attnlab
