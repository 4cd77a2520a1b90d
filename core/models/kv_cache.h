#pragma once
// The key/value cache of generation: per layer one K and one V buffer [B, Hkv, S_max, d]
// (heads-first: the layout the attention op reads, with S_max as the slot stride; a layer may ask
// for other head counts and dims, AttentionLayer::kv_cache_shape), carved once from one arena for
// (B, S_max), and the number of tokens each sequence holds.
//
// Sequences of one batch may hold different numbers of tokens: prompts of different lengths are
// right-padded, row b's tokens occupy slots [0, lengths[b]), and the attention masks every slot at
// or beyond a row's length through its per-row key lengths. Slots beyond a row's length may hold
// the padding tokens' keys; a decode step overwrites slot lengths[b] with the row's next token.
// The attention multiplies masked slots by an exact 0, so they must hold finite values: reset()
// zeroes the buffers (fresh memory could hold NaN bit patterns).
#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "core/ctx.h"
#include "core/io/hf_config.h"
#include "core/layers/attention_layer.h"

namespace attnlab {

class KvCache {
 public:
  KvCache() = default;
  // Allocates (and zeroes) K and V for `layers` layers of B sequences of up to `capacity` tokens.
  KvCache(const Ctx& ctx, DType dt, int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity,
          int64_t head_dim);
  // Per-layer shapes (one entry per layer; every size positive).
  KvCache(const Ctx& ctx, DType dt, int64_t batch, int64_t capacity, const std::vector<KvCacheShape>& layers);
  // The cache of a model of this config (Hkv, d, L) in dtype dt.
  static KvCache for_config(const Ctx& ctx, const ModelConfig& config, DType dt, int64_t batch, int64_t capacity);
  // Bytes such a cache occupies (arena alignment included).
  static size_t bytes_for(DType dt, int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity,
                          int64_t head_dim);

  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;

  const Tensor& k(int64_t layer) const;
  const Tensor& v(int64_t layer) const;
  int64_t layers() const { return int64_t(k_.size()); }
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  DType dtype() const { return dtype_; }
  Device device() const { return arena_.device(); }
  size_t bytes() const { return arena_.capacity(); }

  // Tokens each sequence holds (host side; the device learns them through the key lengths of each
  // attention call).
  const std::vector<int64_t>& lengths() const { return lengths_; }
  int64_t length(int64_t row) const { return lengths_.at(size_t(row)); }
  int64_t max_length() const;
  // Records new lengths (each in [0, capacity]).
  void set_lengths(const std::vector<int64_t>& lengths);
  // Every sequence empty; buffers zeroed (see above). Called before each new batch of prompts.
  void reset(const Ctx& ctx);

 private:
  Arena arena_;
  std::vector<Tensor> k_, v_;
  std::vector<int64_t> lengths_;
  int64_t batch_ = 0, capacity_ = 0;
  DType dtype_ = DType::f32;
};

}  // namespace attnlab
