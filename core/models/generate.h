#pragma once
// Text generation with a Model (HF generate() semantics for decoder-only models):
//
//   logits = prefill(prompts)                      // CachedForward: KV cache, last rows only
//   repeat max_new_tokens times:
//     token = sample(logits)                       // METHODS P14 in HF's order (core/ops/sampling.h):
//                                                  //   repetition penalty → temperature → top-k →
//                                                  //   top-p → softmax → multinomial; or greedy
//     a sequence that emits a stop token is finished: it gets no more tokens
//     logits = decode(token)                       // finished sequences are fed pad_token
//
// Batches: prompts may differ in length (right-padded in the cache, each row at its own
// position; see core/models/kv_cache.h), so generating a batch gives every sequence the tokens it
// gets alone under greedy decoding. Sampling is seeded: row b of step s draws
// philox_uniform(ctx.seed, offset_s, b) with offset_s = ctx.take_rng(B) (the stream depends on
// ctx.seed, the row index and how many random numbers ctx handed out before, on the CPU and the
// GPU alike).
//
// Repetition penalty counts every token of the prompt (the whole prompt, chat template included,
// as HF's input_ids) and every generated token of that row.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/models/cached_forward.h"
#include "data/tokenizer.h"

namespace attnlab {

struct GenerationConfig {
  int64_t max_new_tokens = 32;        // ≥ 1
  bool do_sample = false;             // false: greedy, the argmax of the penalised logits (HF's default)
  float temperature = 1.0f;           // > 0 when sampling (0 also means greedy)
  int64_t top_k = 50;                 // 0 = off (HF's default is 50)
  double top_p = 1.0;                 // in (0, 1]; 1 = off
  float repetition_penalty = 1.0f;   // > 0; 1 = off
  std::vector<int32_t> stop_tokens;   // a sequence ends with (and including) the first of these it emits
  int32_t pad_token = -1;             // fed to finished sequences; -1: the first stop token, else 0
};

struct GenerationStats {
  int64_t batch = 0;
  int64_t prompt_tokens = 0;    // Σ prompt lengths
  int64_t new_tokens = 0;       // tokens generated, stop tokens included (nothing after them)
  int64_t decode_steps = 0;     // one-token forward passes after the prefill
  double prefill_seconds = 0;   // prefill forward + first sampling: time to the first token
  double decode_seconds = 0;    // every later step (forward + sampling + host round trip)
  double prefill_tokens_per_s() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  // Sequences × decode steps per second (finished rows still occupy their slot of the batch).
  double decode_tokens_per_s() const { return decode_seconds > 0 ? batch * decode_steps / decode_seconds : 0; }
};

struct GenerationResult {
  std::vector<std::vector<int32_t>> tokens;  // per sequence: generated ids, the stop token included
  std::vector<bool> stopped;                 // ended by a stop token (else by max_new_tokens)
  std::vector<std::string> texts;            // with a tokenizer: the tokens before the stop token,
                                             // decoded with special tokens skipped
  GenerationStats stats;
  std::string length_note;                   // set when the model's positions limited or warned (below)
};

// How many new tokens a prompt of `prompt_len` tokens gets when `wanted` are asked for. GPT-2's
// learned positions end at n_positions: generation stops there (the new-token count is cut, the
// note says where and why); a prompt alone longer than that is an error naming the fix. RoPE
// models (Qwen) have no such table: they run past max_position_embeddings, with a warning in
// the note that the model was not trained that far.
struct GenerationLength {
  int64_t max_new_tokens = 0;
  bool truncated = false;  // fewer new tokens than asked (GPT-2)
  std::string note;        // "" when the request fits
};
GenerationLength plan_generation_length(const ModelConfig& config, int64_t prompt_len, int64_t wanted);

// HF's generation_config.json over `base`: do_sample, temperature, top_k, top_p,
// repetition_penalty, max_new_tokens, eos_token_id (one id or a list: the stop tokens) and
// pad_token_id, where present and not null. Wrong types are errors naming the file and the key.
GenerationConfig read_generation_config(const std::string& path, GenerationConfig base = {});

// Called after each step for every sequence that got a token (row index, token id).
using TokenCallback = std::function<void(int64_t row, int32_t token)>;

// Generates for every prompt (ids in [0, V)). The tokenizer, when given, fills `texts`. The
// longest prompt's plan_generation_length bounds the new tokens; its note goes to length_note.
GenerationResult generate(Model& model, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const data::Tokenizer* tokenizer = nullptr,
                          const TokenCallback& on_token = {});
// The same on an existing CachedForward (its batch must equal the number of prompts and its
// cache hold every prompt plus max_new_tokens − 1 tokens): repeated calls reuse its memory.
GenerationResult generate(CachedForward& forward, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const data::Tokenizer* tokenizer = nullptr,
                          const TokenCallback& on_token = {});

// The text of generated ids: ids up to (not including) the first stop token, special tokens
// skipped, ids outside the tokenizer's vocabulary skipped (a model's embedding may have more rows
// than its tokenizer has tokens).
std::string generated_text(const data::Tokenizer& tokenizer, const std::vector<int32_t>& ids,
                           const std::vector<int32_t>& stop_tokens);

// Turns one sequence's tokens into text as they arrive. Byte-level BPE tokens map to bytes
// independently, but one character may span tokens: bytes of an incomplete UTF-8 character are
// held back until the character completes.
class TextStreamer {
 public:
  explicit TextStreamer(const data::Tokenizer& tokenizer, bool skip_special = true)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}
  // The text this token completes (possibly empty).
  std::string push(int32_t token);
  // Whatever is still held back (an incomplete character at the very end).
  std::string finish();

 private:
  const data::Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;
};

// Length of the longest prefix of `s` that does not end inside a UTF-8 character.
size_t utf8_complete_prefix(const std::string& s);

}  // namespace attnlab
