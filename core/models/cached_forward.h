#pragma once
// Inference forward of a Model over a KV cache: the pass generation runs (core/models/generate.h).
//
//   prefill(prompts)  T = the longest prompt: every prompt's tokens go through the model at once,
//                     right-padded; their keys and values fill cache slots [0, T); returns the
//                     logits of each prompt's LAST token, [B, V].
//   decode(tokens)    one token per sequence at position = the sequence's current length (each row
//                     its own); its key and value go into that slot; returns its logits, [B, V].
//
// Same arithmetic as Model::forward in eval mode (no dropout) on the same parameters, through the
// model's own blocks (DecoderBlock::forward_cached: norm → attention → residual → norm → MLP →
// residual), so no second block forward exists to keep in step: embedding (+ GPT-2's learned
// positions), the blocks, final norm, LM head. The attention layer runs its KV-cache path
// (AttentionLayer::forward_cached, which a variant must implement to be used here). Differences that make it cheap: nothing is
// kept for a backward, the LM head runs on the B last rows only (never [B, T, V]), and a decode
// step costs one token per sequence. The head is the model's own (the head slot,
// OutputHead::logits_rows): the logits are [B, V], so no sampler can pick a padding id. Padded rows of
// a prefill compute values nobody reads; their keys sit beyond the row's length and are masked
// until a decode step overwrites them.
//
// Memory: the cache (for B × max_length tokens) and one arena of buffers for B × max_prompt rows,
// both allocated by the constructor; prefill/decode allocate nothing. The training path (plan,
// forward, backward) is untouched, so a model can train and generate alternately.
#include <cstdint>
#include <vector>

#include "core/layers/linear.h"
#include "core/models/kv_cache.h"
#include "core/models/model.h"

namespace attnlab {

class CachedForward {
 public:
  // B sequences per call, prompts of up to max_prompt tokens, at most max_length tokens (prompt +
  // generated) per sequence. GPT-2: max_length ≤ n_positions.
  CachedForward(Model& model, const Ctx& ctx, int64_t batch, int64_t max_prompt, int64_t max_length);

  // Resets the cache and runs B prompts (1 ≤ length ≤ max_prompt; ids in [0, V)). Returns the
  // logits [B, V] of each prompt's last token (model dtype, on the model's device), valid until the
  // next call.
  Tensor prefill(Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts);
  // Appends one token to every sequence (each must have room) and returns its logits [B, V].
  Tensor decode(Ctx& ctx, const std::vector<int32_t>& tokens);

  // Forgets the tokens at and beyond lengths[b] (1 ≤ lengths[b] ≤ the current length): the next
  // decode writes there again. For timing one step at a fixed length, and for rolling back.
  void truncate(const std::vector<int64_t>& lengths);

  const KvCache& cache() const { return cache_; }
  int64_t batch() const { return B_; }
  int64_t max_prompt() const { return max_prompt_; }
  int64_t max_length() const { return cache_.capacity(); }
  // Bytes of the buffers arena and of the attention scratch (the cache is cache().bytes()).
  size_t buffer_bytes() const { return buffers_.capacity() + block_scratch_.capacity(); }

 private:
  // Carves the buffers from `arena`, or (arena null) adds up their bytes.
  void carve(Arena* arena, size_t* bytes);
  // Runs T tokens per row (ids/positions/key lengths already uploaded) through every block;
  // leaves the last block's output in resid_.
  void run_blocks(Ctx& ctx, int64_t T, int64_t keys, int64_t query_offset);
  void upload_inputs(Ctx& ctx, int64_t T);
  Tensor head(Ctx& ctx, const Tensor& last_rows);

  Model& model_;
  ModelConfig config_;
  DType dt_;
  bool gpt2_ = false;
  int64_t B_ = 0, max_prompt_ = 0, D_ = 0, V_ = 0;
  Param *wte_ = nullptr, *wpe_ = nullptr;

  KvCache cache_;
  Arena buffers_, block_scratch_;
  // i32 inputs of one call, uploaded together: ids [B, T], positions [B, T], key lengths [B],
  // last-row indices [B] (prefill: b·T + length − 1).
  std::vector<int32_t> host_inputs_;
  Tensor inputs_;
  Tensor ids_, positions_, key_lengths_, last_rows_;
  Tensor resid_, mid_, branch_;                // [B·max_prompt, D] (mid, branch: GPT-2's embedding sum)
  Tensor last_, last_norm_, logits_;           // [B, D], [B, D], [B, V]
};

}  // namespace attnlab
