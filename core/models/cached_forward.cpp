#include "core/models/cached_forward.h"

#include <algorithm>

#include "core/memory.h"
#include "core/nvtx.h"
#include "core/ops/embedding.h"
#include "core/ops/residual.h"

namespace attnlab {

CachedForward::CachedForward(Model& model, const Ctx& ctx, int64_t batch, int64_t max_prompt, int64_t max_length)
    : model_(model), config_(model.config()), dt_(model.dtype()), gpt2_(model.config().arch == ModelArch::gpt2) {
  const ModelConfig& c = config_;
  CHECK(ctx.device == model.device(), "generation: the model is on ", device_name(model.device()), ", the context on ",
        device_name(ctx.device));
  CHECK(batch > 0 && max_prompt > 0 && max_length >= max_prompt, "generation: need batch > 0 and 0 < max_prompt ≤ ",
        "max_length, got batch ", batch, ", max_prompt ", max_prompt, ", max_length ", max_length);
  if (gpt2_)
    CHECK(max_length <= c.max_position_embeddings, "generation: ", max_length, " tokens per sequence (prompt + new ",
          "tokens) exceed GPT-2's ", c.max_position_embeddings, " learned positions (n_positions in '", c.source, "')");
  B_ = batch;
  max_prompt_ = max_prompt;
  D_ = c.hidden_size;
  V_ = c.vocab_size;

  wte_ = model.token_embedding();
  wpe_ = gpt2_ ? &model.params().at("transformer.wpe.weight") : nullptr;

  // Each layer's own cache shape (a variant may differ from the config's Hkv × head_dim).
  std::vector<KvCacheShape> shapes;
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    KvCacheShape s = model.block(l).attention().kv_cache_shape();
    if (s.k_heads == 0) s = {c.num_kv_heads, c.head_dim, c.num_kv_heads, c.head_dim};
    shapes.push_back(s);
  }
  cache_ = KvCache(ctx, dt_, B_, max_length, shapes);
  size_t bytes = 0;
  carve(nullptr, &bytes);
  buffers_ = Arena(ctx.device, bytes);
  carve(&buffers_, &bytes);
  // Block scratch for the two kinds of call: a prefill (T = S ≤ max_prompt) and a decode step
  // (T = 1, S ≤ max_length). Every buffer grows with T and S, so these two bound every call.
  size_t scratch = std::max<size_t>(Arena::kAlign, model.final_norm().inference_bytes(dt_, B_) +
                                                      model.head().logits_rows_bytes(dt_, B_));
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    const DecoderBlock& blk = model.block(l);
    scratch = std::max({scratch, blk.cached_scratch_bytes(dt_, B_, max_prompt, max_prompt),
                        blk.cached_scratch_bytes(dt_, B_, 1, max_length)});
  }
  block_scratch_ = Arena(ctx.device, scratch);
  host_inputs_.resize(size_t(2 * B_ * max_prompt_ + 2 * B_));
}

void CachedForward::carve(Arena* arena, size_t* bytes) {
  *bytes = 0;
  auto take = [&](DType t, std::initializer_list<int64_t> dims, const char* name) {
    const Tensor shape(nullptr, t, Device::cpu, dims, name);
    *bytes += Arena::aligned(shape.bytes());
    return arena ? arena->alloc(t, dims, name) : Tensor();
  };
  const int64_t rows = B_ * max_prompt_;
  inputs_ = take(DType::i32, {2 * rows + 2 * B_}, "generation.inputs");
  resid_ = take(dt_, {rows, D_}, "generation.resid");
  mid_ = gpt2_ ? take(dt_, {rows, D_}, "generation.token_embedding") : Tensor();
  branch_ = gpt2_ ? take(dt_, {rows, D_}, "generation.position_embedding") : Tensor();
  last_ = take(dt_, {B_, D_}, "generation.last_rows");
  last_norm_ = take(dt_, {B_, D_}, "generation.last_rows_norm");
  logits_ = take(dt_, {B_, V_}, "generation.logits");
  *bytes = std::max<size_t>(*bytes, Arena::kAlign);
}

void CachedForward::upload_inputs(Ctx& ctx, int64_t T) {
  // One copy: ids [B, T], positions [B, T], key lengths [B], last rows [B], packed for this T.
  const int64_t n = 2 * B_ * T + 2 * B_;
  Tensor host(host_inputs_.data(), DType::i32, Device::cpu, {n}, "generation.inputs(host)");
  copy_tensor(ctx, inputs_.prefix({n}), host);
  auto at = [&](int64_t offset) { return static_cast<int32_t*>(inputs_.data) + offset; };
  ids_ = Tensor(at(0), DType::i32, inputs_.device, {B_, T}, "generation.ids");
  positions_ = Tensor(at(B_ * T), DType::i32, inputs_.device, {B_, T}, "generation.positions");
  key_lengths_ = Tensor(at(2 * B_ * T), DType::i32, inputs_.device, {B_}, "generation.key_lengths");
  last_rows_ = Tensor(at(2 * B_ * T + B_), DType::i32, inputs_.device, {B_}, "generation.last_rows");
}

void CachedForward::run_blocks(Ctx& ctx, int64_t T, int64_t keys, int64_t query_offset) {
  const Tensor resid = resid_.prefix({B_, T, D_});
  if (gpt2_) {
    // wte[id] + wpe[position]: two gathers and an add (the embedding op's own position table takes
    // one offset for the whole batch; here every row has its own).
    const Tensor tok_emb = mid_.prefix({B_, T, D_}), pos_emb = branch_.prefix({B_, T, D_});
    EmbeddingArgs tok;
    tok.out = tok_emb;
    tok.ids = ids_;
    tok.table = wte_->unpadded(wte_->value);
    embedding_forward(ctx, tok);
    EmbeddingArgs pos;
    pos.out = pos_emb;
    pos.ids = positions_;
    pos.table = wpe_->value;
    embedding_forward(ctx, pos);
    residual_forward(ctx, {resid, tok_emb, pos_emb});
  } else {
    EmbeddingArgs tok;
    tok.out = resid;
    tok.ids = ids_;
    tok.table = wte_->unpadded(wte_->value);
    embedding_forward(ctx, tok);
  }
  for (int64_t l = 0; l < model_.num_layers(); ++l) {
    block_scratch_.reset();
    CachedAttentionArgs a;
    a.k_cache = cache_.k(l);
    a.v_cache = cache_.v(l);
    a.positions = positions_;
    a.key_lengths = key_lengths_;
    a.keys = keys;
    a.query_offset = query_offset;
    model_.block(l).forward_cached(ctx, resid, resid, a, block_scratch_);
  }
}

Tensor CachedForward::head(Ctx& ctx, const Tensor& last_rows) {
  block_scratch_.reset();
  model_.final_norm().forward_inference(ctx, last_rows, last_norm_, block_scratch_);
  model_.head().logits_rows(ctx, last_norm_, logits_, block_scratch_);
  return logits_;
}

Tensor CachedForward::prefill(Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts) {
  NVTX_RANGE(ctx, "generation prefill");
  CHECK(int64_t(prompts.size()) == B_, "prefill: ", prompts.size(), " prompts for a batch of ", B_);
  int64_t T = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    const int64_t n = int64_t(prompts[b].size());
    CHECK(n >= 1 && n <= max_prompt_, "prefill: prompt ", b, " has ", n, " tokens; allowed 1 to ", max_prompt_);
    for (size_t t = 0; t < prompts[b].size(); ++t)
      CHECK(prompts[b][t] >= 0 && prompts[b][t] < V_, "prefill: token ", prompts[b][t], " (prompt ", b, ", position ",
            t, ") is outside the model's vocabulary of ", V_);
    T = std::max(T, n);
  }
  cache_.reset(ctx);
  // Right padding: a padded position repeats the prompt's last token (any valid id would do: its
  // outputs are never read and its key slot is masked, then overwritten by decoding).
  std::vector<int64_t> lengths(static_cast<size_t>(B_));
  for (int64_t b = 0; b < B_; ++b) {
    const auto& p = prompts[size_t(b)];
    const int64_t n = int64_t(p.size());
    lengths[size_t(b)] = n;
    for (int64_t t = 0; t < T; ++t) {
      host_inputs_[size_t(b * T + t)] = p[size_t(std::min(t, n - 1))];
      host_inputs_[size_t(B_ * T + b * T + t)] = int32_t(t);
    }
    host_inputs_[size_t(2 * B_ * T + b)] = int32_t(n);
    host_inputs_[size_t(2 * B_ * T + B_ + b)] = int32_t(b * T + n - 1);
  }
  upload_inputs(ctx, T);
  run_blocks(ctx, T, T, 0);
  cache_.set_lengths(lengths);

  // The last token of each prompt: row b·T + length − 1 of the residual stream (a gather through
  // the embedding op, whose "table" is the residual stream). The final norm works per row, so
  // gathering first gives the same values as normalising everything.
  EmbeddingArgs g;
  g.out = last_;
  g.ids = last_rows_;
  g.table = resid_.prefix({B_ * T, D_});
  embedding_forward(ctx, g);
  return head(ctx, last_);
}

Tensor CachedForward::decode(Ctx& ctx, const std::vector<int32_t>& tokens) {
  NVTX_RANGE(ctx, "generation decode");
  CHECK(int64_t(tokens.size()) == B_, "decode: ", tokens.size(), " tokens for a batch of ", B_);
  std::vector<int64_t> lengths = cache_.lengths();
  int64_t keys = 0;
  for (int64_t b = 0; b < B_; ++b) {
    const int32_t id = tokens[size_t(b)];
    const int64_t n = lengths[size_t(b)];
    CHECK(n >= 1, "decode: sequence ", b, " is empty; run prefill first");
    CHECK(n < cache_.capacity(), "decode: sequence ", b, " already holds ", n, " tokens, the cache's capacity");
    CHECK(id >= 0 && id < V_, "decode: token ", id, " (sequence ", b, ") is outside the model's vocabulary of ", V_);
    host_inputs_[size_t(b)] = id;
    host_inputs_[size_t(B_ + b)] = int32_t(n);          // position = slot = current length
    host_inputs_[size_t(2 * B_ + b)] = int32_t(n + 1);  // keys visible after the write
    host_inputs_[size_t(3 * B_ + b)] = int32_t(b);
    lengths[size_t(b)] = n + 1;
    keys = std::max(keys, n + 1);
  }
  upload_inputs(ctx, 1);
  // One query per row that may see every slot up to S − 1; each row's key length cuts it to its own.
  run_blocks(ctx, 1, keys, keys - 1);
  cache_.set_lengths(lengths);
  return head(ctx, resid_.prefix({B_, D_}));
}

void CachedForward::truncate(const std::vector<int64_t>& lengths) {
  CHECK(int64_t(lengths.size()) == B_, "truncate: ", lengths.size(), " lengths for a batch of ", B_);
  for (int64_t b = 0; b < B_; ++b)
    CHECK(lengths[size_t(b)] >= 1 && lengths[size_t(b)] <= cache_.length(b), "truncate: sequence ", b, " holds ",
          cache_.length(b), " tokens; it can be cut to 1 to ", cache_.length(b), ", not ", lengths[size_t(b)]);
  cache_.set_lengths(lengths);
}

}  // namespace attnlab
