#include "core/models/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/memory.h"
#include "core/nvtx.h"
#include "core/ops/sampling.h"
#include "data/input_check.h"

namespace attnlab {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void check_config(const GenerationConfig& c, int64_t vocab) {
  CHECK(c.max_new_tokens >= 1, "generate: max_new_tokens must be ≥ 1, got ", c.max_new_tokens);
  CHECK(std::isfinite(c.temperature) && c.temperature >= 0, "generate: temperature must be ≥ 0, got ", c.temperature);
  CHECK(c.top_k >= 0, "generate: top_k must be ≥ 0 (0 = off), got ", c.top_k);
  CHECK(c.top_p > 0 && c.top_p <= 1, "generate: top_p must be in (0, 1] (1 = off), got ", c.top_p);
  CHECK(std::isfinite(c.repetition_penalty) && c.repetition_penalty > 0,
        "generate: repetition_penalty must be > 0 (1 = off), got ", c.repetition_penalty);
  CHECK(c.pad_token >= -1 && c.pad_token < vocab, "generate: pad_token ", c.pad_token,
        " is outside the model's vocabulary of ", vocab);
}

int32_t pad_token_of(const GenerationConfig& c, int64_t vocab) {
  if (c.pad_token >= 0) return c.pad_token;
  for (int32_t s : c.stop_tokens)
    if (s >= 0 && s < vocab) return s;
  return 0;
}

int64_t longest(const std::vector<std::vector<int32_t>>& prompts) {
  int64_t n = 0;
  for (const auto& p : prompts) n = std::max(n, int64_t(p.size()));
  return n;
}

// Device memory of one generate call: sampled ids and the seen-token bitmask.
struct SamplerState {
  Arena arena;
  Tensor ids, seen;
};

}  // namespace

GenerationResult generate(Model& model, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const data::Tokenizer* tokenizer,
                          const TokenCallback& on_token) {
  CHECK(!prompts.empty(), "generate: no prompts");
  check_config(config, model.config().vocab_size);
  const int64_t max_prompt = std::max<int64_t>(1, longest(prompts));
  const GenerationLength len = plan_generation_length(model.config(), max_prompt, config.max_new_tokens);
  GenerationConfig fitted = config;
  fitted.max_new_tokens = len.max_new_tokens;
  CachedForward forward(model, ctx, int64_t(prompts.size()), max_prompt, max_prompt + fitted.max_new_tokens - 1);
  GenerationResult r = generate(forward, ctx, prompts, fitted, tokenizer, on_token);
  r.length_note = len.note;
  return r;
}

GenerationLength plan_generation_length(const ModelConfig& c, int64_t prompt_len, int64_t wanted) {
  GenerationLength g;
  g.max_new_tokens = wanted;
  const int64_t limit = c.max_position_embeddings;
  // The last new token is sampled, never fed back: prompt + new − 1 positions are computed.
  const int64_t needed = prompt_len + wanted - 1;
  if (limit <= 0 || needed <= limit) return g;
  const std::string where = c.source.empty() ? std::string("config.json") : "'" + c.source + "'";
  if (c.arch == ModelArch::gpt2) {
    if (prompt_len > limit)
      FAIL_WITH("generate: the prompt has ", prompt_len, " tokens, more than GPT-2's ", limit,
                " learned positions (n_positions in ", where, "). Fix: shorten the prompt to at most ", limit, " tokens");
    g.max_new_tokens = limit - prompt_len + 1;
    g.truncated = true;
    g.note = "generation stopped at GPT-2's " + std::to_string(limit) + " learned positions (n_positions in " + where +
             "): the prompt of " + std::to_string(prompt_len) + " tokens leaves room for " +
             std::to_string(g.max_new_tokens) + " new tokens, not the " + std::to_string(wanted) + " asked for";
    return g;
  }
  g.note = "warning: the prompt (" + std::to_string(prompt_len) + " tokens) and " + std::to_string(wanted) +
           " new tokens reach position " + std::to_string(needed) + ", past max_position_embeddings " +
           std::to_string(limit) + " in " + where + ": RoPE runs on, but the model was not trained that far, so "
           "the text may degrade";
  return g;
}

GenerationResult generate(CachedForward& forward, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const data::Tokenizer* tokenizer,
                          const TokenCallback& on_token) {
  NVTX_RANGE(ctx, "generate");
  const int64_t B = int64_t(prompts.size());
  CHECK(B == forward.batch(), "generate: ", B, " prompts for a CachedForward of batch ", forward.batch());
  const int64_t max_prompt = longest(prompts);
  CHECK(max_prompt + config.max_new_tokens - 1 <= forward.max_length(), "generate: prompts of up to ", max_prompt,
        " tokens plus ", config.max_new_tokens, " new tokens need a cache of ", max_prompt + config.max_new_tokens - 1,
        " tokens per sequence; this one holds ", forward.max_length());

  GenerationResult r;
  r.tokens.assign(size_t(B), {});
  r.stopped.assign(size_t(B), false);
  r.stats.batch = B;
  for (const auto& p : prompts) r.stats.prompt_tokens += int64_t(p.size());

  const bool penalise = config.repetition_penalty != 1.0f;
  const auto t0 = Clock::now();
  Tensor logits = forward.prefill(ctx, prompts);
  const int64_t V = logits.dim(1);
  check_config(config, V);
  const int32_t pad = pad_token_of(config, V);

  SamplerState st;
  const int64_t words = sampling_seen_words(V);
  st.arena = Arena(ctx.device, Arena::aligned(size_t(B) * 4) + (penalise ? Arena::aligned(size_t(B * words) * 4) : 0));
  st.ids = st.arena.alloc(DType::i32, {B}, "generate.ids");
  if (penalise) {
    // The prompts' tokens, marked on the host and uploaded once; generated tokens are marked on
    // the device after each step.
    std::vector<uint32_t> bits(size_t(B * words), 0u);
    for (int64_t b = 0; b < B; ++b)
      for (int32_t id : prompts[size_t(b)]) bits[size_t(b * words + id / 32)] |= 1u << (id % 32);
    st.seen = st.arena.alloc(DType::u32, {B, words}, "generate.seen");
    copy_tensor(ctx, st.seen, Tensor(bits.data(), DType::u32, Device::cpu, {B, words}, "generate.seen(host)"));
  }

  SamplingArgs s;
  s.seen = st.seen;
  s.repetition_penalty = config.repetition_penalty;
  s.temperature = config.temperature;
  s.greedy = !config.do_sample;
  s.top_k = config.top_k;
  s.top_p = config.top_p;
  s.out_ids = st.ids;

  std::vector<int32_t> sampled(static_cast<size_t>(B)), feed(static_cast<size_t>(B));
  Tensor sampled_host(sampled.data(), DType::i32, Device::cpu, {B}, "generate.ids(host)");
  int64_t active = B;
  auto t_decode = Clock::now();
  for (int64_t step = 0; step < config.max_new_tokens; ++step) {
    s.logits = logits;
    s.rng_offset = config.do_sample ? ctx.take_rng(uint64_t(B)) : 0;
    sampling_forward(ctx, s);
    if (penalise) sampling_mark_seen(ctx, st.seen, st.ids);
    copy_tensor(ctx, sampled_host, st.ids);  // waits for the step: the clock below is honest
    if (step == 0) {
      r.stats.prefill_seconds = seconds_since(t0);
      t_decode = Clock::now();
    }
    for (int64_t b = 0; b < B; ++b) {
      feed[size_t(b)] = pad;
      if (r.stopped[size_t(b)]) continue;
      const int32_t id = sampled[size_t(b)];
      r.tokens[size_t(b)].push_back(id);
      ++r.stats.new_tokens;
      if (on_token) on_token(b, id);
      if (std::find(config.stop_tokens.begin(), config.stop_tokens.end(), id) != config.stop_tokens.end()) {
        r.stopped[size_t(b)] = true;
        --active;
      } else {
        feed[size_t(b)] = id;
      }
    }
    if (active == 0 || step + 1 == config.max_new_tokens) break;
    logits = forward.decode(ctx, feed);
    ++r.stats.decode_steps;
  }
  if (r.stats.decode_steps > 0) r.stats.decode_seconds = seconds_since(t_decode);

  if (tokenizer)
    for (const auto& ids : r.tokens) r.texts.push_back(generated_text(*tokenizer, ids, config.stop_tokens));
  return r;
}

GenerationConfig read_generation_config(const std::string& path, GenerationConfig c) {
  std::ifstream in(path);
  INPUT_CHECK(in, "cannot open '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  INPUT_CHECK(!j.is_discarded() && j.is_object(), "'", path, "' is not a JSON object");
  auto has = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto number = [&](const char* key) {
    INPUT_CHECK(j[key].is_number(), "'", path, "': ", key, " must be a number, got ", j[key].dump());
    return j[key].get<double>();
  };
  auto integer = [&](const char* key, const nlohmann::json& v) {
    INPUT_CHECK(v.is_number_integer(), "'", path, "': ", key, " must hold integers, got ", v.dump());
    return v.get<int64_t>();
  };
  if (has("do_sample")) {
    INPUT_CHECK(j["do_sample"].is_boolean(), "'", path, "': do_sample must be true or false, got ", j["do_sample"].dump());
    c.do_sample = j["do_sample"].get<bool>();
  }
  if (has("temperature")) c.temperature = float(number("temperature"));
  if (has("top_k")) c.top_k = integer("top_k", j["top_k"]);
  if (has("top_p")) c.top_p = number("top_p");
  if (has("repetition_penalty")) c.repetition_penalty = float(number("repetition_penalty"));
  if (has("max_new_tokens")) c.max_new_tokens = integer("max_new_tokens", j["max_new_tokens"]);
  if (has("eos_token_id")) {
    c.stop_tokens.clear();
    const auto& e = j["eos_token_id"];
    if (e.is_array())
      for (const auto& v : e) c.stop_tokens.push_back(int32_t(integer("eos_token_id", v)));
    else
      c.stop_tokens.push_back(int32_t(integer("eos_token_id", e)));
  }
  if (has("pad_token_id")) c.pad_token = int32_t(integer("pad_token_id", j["pad_token_id"]));
  return c;
}

std::string generated_text(const data::Tokenizer& tokenizer, const std::vector<int32_t>& ids,
                           const std::vector<int32_t>& stop_tokens) {
  std::vector<int32_t> kept;
  for (int32_t id : ids) {
    if (std::find(stop_tokens.begin(), stop_tokens.end(), id) != stop_tokens.end()) break;
    if (id >= 0 && id < tokenizer.vocab_size()) kept.push_back(id);
  }
  return tokenizer.decode(kept, true);
}

size_t utf8_complete_prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to the last lead byte; keep it only if its
  // character is complete.
  const size_t n = s.size();
  size_t i = n;
  int continuation = 0;
  while (i > 0 && continuation < 4) {
    const unsigned char c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) break;
    --i;
    ++continuation;
  }
  if (i == 0) return continuation > 0 ? n : 0;  // only continuation bytes: nothing to wait for
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  const int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  if (lead < 0x80 || lead >= 0xF8 || continuation >= need) return n;  // ASCII, invalid, or complete
  return i - 1;
}

std::string TextStreamer::push(int32_t token) {
  if (token < 0 || token >= tokenizer_.vocab_size()) return "";
  const int32_t one[1] = {token};
  pending_ += tokenizer_.decode(one, skip_special_);
  const size_t n = utf8_complete_prefix(pending_);
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  return out;
}

std::string TextStreamer::finish() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace attnlab
