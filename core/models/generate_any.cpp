#include "core/models/generate_any.h"

#include <algorithm>

#include "core/memory.h"
#include "core/models/model.h"
#include "core/models/scratch_decoder.h"
#include "core/ops/sampling.h"

namespace attnlab {

std::vector<int32_t> model_eos_tokens(const TrainableModel& model) {
  if (const auto* m = dynamic_cast<const Model*>(&model))
    return std::vector<int32_t>(m->config().eos_token_ids.begin(), m->config().eos_token_ids.end());
  return {};
}

GenerationResult generate_any(TrainableModel& model, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                              const GenerationConfig& config, const data::Tokenizer* tokenizer,
                              const TokenCallback& on_token) {
  if (auto* m = dynamic_cast<Model*>(&model)) return generate(*m, ctx, prompts, config, tokenizer, on_token);
  int64_t positions = 0;
  if (const auto* s = dynamic_cast<const ScratchDecoder*>(&model)) positions = s->config().context;
  return generate_by_recompute(model, ctx, prompts, config, tokenizer, on_token, positions);
}

GenerationResult generate_by_recompute(TrainableModel& model, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationConfig& config, const data::Tokenizer* tokenizer,
                                       const TokenCallback& on_token, int64_t max_positions) {
  const int64_t B = int64_t(prompts.size()), V = model.vocab_size();
  CHECK(B > 0, "generate: no prompts");
  CHECK(config.max_new_tokens >= 1, "generate: max_new_tokens must be ≥ 1, got ", config.max_new_tokens);
  int64_t longest = 0;
  for (const auto& p : prompts) {
    CHECK(!p.empty(), "generate: an empty prompt (every prompt needs at least one token)");
    for (int32_t id : p) CHECK(id >= 0 && id < V, "generate: prompt token ", id, " is outside the vocabulary of ", V);
    longest = std::max(longest, int64_t(p.size()));
  }
  GenerationResult r;
  int64_t new_tokens = config.max_new_tokens;
  if (max_positions > 0 && longest + new_tokens - 1 > max_positions) {
    INPUT_CHECK(longest <= max_positions, "generate: the prompt has ", longest, " tokens, more than the model's ",
                max_positions, " learned positions. Fix: shorten the prompt to at most ", max_positions, " tokens");
    new_tokens = max_positions - longest + 1;
    r.length_note = "generation stopped at the model's " + std::to_string(max_positions) +
                    " learned positions: the prompt of " + std::to_string(longest) + " tokens leaves room for " +
                    std::to_string(new_tokens) + " new tokens, not the " + std::to_string(config.max_new_tokens) +
                    " asked for";
  }
  const int64_t L = longest + new_tokens - 1;
  int32_t pad = config.pad_token >= 0 ? config.pad_token : 0;
  if (config.pad_token < 0)
    for (int32_t s : config.stop_tokens)
      if (s >= 0 && s < V) {
        pad = s;
        break;
      }

  model.set_training(false);
  model.plan(ctx, B, L);
  Buffer ids_dev(model.device(), DType::i32, {B, L}, "generate.ids");
  // Sampling runs on the host logits (f64) with a CPU context of the same seed; the Philox offsets
  // still come from `ctx`, so the stream is the one generate() would draw.
  Ctx host = Ctx::make_cpu(ctx.seed);
  const int64_t words = sampling_seen_words(V);
  std::vector<double> last(size_t(B * V));
  std::vector<int32_t> chosen(static_cast<size_t>(B));
  std::vector<uint32_t> seen(size_t(B * words), 0u);
  Tensor last_t(last.data(), DType::f64, Device::cpu, {B, V}, "generate.logits(host)");
  Tensor chosen_t(chosen.data(), DType::i32, Device::cpu, {B}, "generate.ids(host)");
  Tensor seen_t(seen.data(), DType::u32, Device::cpu, {B, words}, "generate.seen(host)");
  for (int64_t b = 0; b < B; ++b)
    for (int32_t id : prompts[size_t(b)]) seen[size_t(b * words + id / 32)] |= 1u << (id % 32);

  SamplingArgs s;
  s.logits = last_t;
  s.seen = config.repetition_penalty != 1.0f ? seen_t : Tensor();
  s.repetition_penalty = config.repetition_penalty;
  s.temperature = config.temperature;
  s.greedy = !config.do_sample;
  s.top_k = config.top_k;
  s.top_p = config.top_p;
  s.out_ids = chosen_t;

  std::vector<std::vector<int32_t>> seqs = prompts;
  r.tokens.assign(size_t(B), {});
  r.stopped.assign(size_t(B), false);
  r.stats.batch = B;
  for (const auto& p : prompts) r.stats.prompt_tokens += int64_t(p.size());
  int64_t active = B;
  std::vector<double> ids_host(size_t(B * L));
  for (int64_t step = 0; step < new_tokens && active > 0; ++step) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        const auto& q = seqs[size_t(b)];
        ids_host[size_t(b * L + t)] = t < int64_t(q.size()) ? q[size_t(t)] : pad;
      }
    from_host_f64(ctx, ids_dev.t(), ids_host);
    model.forward(ctx, ids_dev.t(), Tensor(), 0);
    const std::vector<double> all = model.logits_f64(ctx);  // [B, L, V]
    for (int64_t b = 0; b < B; ++b) {
      const int64_t row = b * L + int64_t(seqs[size_t(b)].size()) - 1;
      std::copy(all.begin() + row * V, all.begin() + (row + 1) * V, last.begin() + b * V);
    }
    s.rng_offset = config.do_sample ? ctx.take_rng(uint64_t(B)) : 0;
    sampling_forward(host, s);
    if (step > 0) ++r.stats.decode_steps;
    for (int64_t b = 0; b < B; ++b) {
      if (r.stopped[size_t(b)]) continue;
      const int32_t id = chosen[size_t(b)];
      r.tokens[size_t(b)].push_back(id);
      seqs[size_t(b)].push_back(id);
      seen[size_t(b * words + id / 32)] |= 1u << (id % 32);
      ++r.stats.new_tokens;
      if (on_token) on_token(b, id);
      if (std::find(config.stop_tokens.begin(), config.stop_tokens.end(), id) != config.stop_tokens.end()) {
        r.stopped[size_t(b)] = true;
        --active;
      }
    }
  }
  if (tokenizer)
    for (const auto& t : r.tokens) r.texts.push_back(generated_text(*tokenizer, t, config.stop_tokens));
  return r;
}

}  // namespace attnlab
