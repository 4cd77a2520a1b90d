#pragma once
// The sampling flags of `attnlab chat` and `attnlab eval gsm8k`, and the settings they resolve to:
// transformers' defaults (greedy; top-k 50 when sampling), then the model folder's
// generation_config.json, then the flags (--temperature/--top-k/--top-p turn sampling on,
// --greedy turns it off), as `attnlab generate` does.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/models/generate.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {

struct SamplingFlags {
  std::optional<int64_t> max_new_tokens;
  bool greedy = false;
  std::optional<float> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<float> repetition_penalty;

  void add_to(CLI::App* c, const std::string& max_new_default) {
    c->add_option("--max-new-tokens", max_new_tokens, "tokens to generate at most per answer (default: " + max_new_default + ")")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
    c->add_flag("--greedy", greedy, "always take the most likely token (overrides generation_config.json's sampling)");
    c->add_option("--temperature", temperature, "sample, dividing the logits by this (> 0)");
    c->add_option("--top-k", top_k, "sample among the k most likely tokens (0: all)");
    c->add_option("--top-p", top_p, "sample among the most likely tokens whose probabilities add up to p (0 < p ≤ 1)");
    c->add_option("--repetition-penalty", repetition_penalty,
                  "divide positive logits (multiply negative ones) of tokens already in the text by this (1: off)");
  }

  void check(const std::string& command) const {
    ARG_CHECK(!greedy || (!temperature && !top_k && !top_p), command, ": --greedy takes no --temperature, --top-k or ",
              "--top-p (those turn sampling on)");
  }

  // The settings for `model_dir` whose eos ids are `eos` (config.json), `max_new_default` new tokens
  // unless the file or --max-new-tokens says otherwise.
  GenerationConfig resolve(const std::string& model_dir, const std::vector<int32_t>& eos, int64_t max_new_default) const {
    GenerationConfig g;
    g.max_new_tokens = max_new_default;
    g.stop_tokens = eos;
    const std::filesystem::path file = std::filesystem::path(model_dir) / "generation_config.json";
    if (std::filesystem::exists(file)) g = read_generation_config(file.string(), g);
    if (max_new_tokens) g.max_new_tokens = *max_new_tokens;
    if (greedy) g.do_sample = false;
    if (temperature || top_k || top_p) g.do_sample = true;
    if (temperature) g.temperature = *temperature;
    if (top_k) g.top_k = *top_k;
    if (top_p) g.top_p = *top_p;
    if (repetition_penalty) g.repetition_penalty = *repetition_penalty;
    return g;
  }
};

// The model-side flags `attnlab chat` and `attnlab eval gsm8k` share: tokenizer, chat template,
// attention options over the folder's, device and dtype. `whose` says whose folder the defaults
// come from ("the model folder's", "each model folder's own").
struct ModelRunFlags {
  std::string tokenizer;
  std::string chat_template = "auto";
  bool no_thinking = false;
  std::vector<std::string> attention;
  std::string device = "cpu";
  std::string dtype = "auto";

  void add_to(CLI::App* c, const std::string& whose) {
    c->add_option("--tokenizer", tokenizer,
                  "gpt2, qwen2.5, qwen3 (asset cache) or a tokenizer folder/file; default: " + whose);
    c->add_option("--chat-template", chat_template,
                  "auto (default: from the tokenizer), qwen2, qwen2.5, qwen3, or none (plain transcript)")
        ->check(CLI::IsMember({"auto", "none", "qwen2", "qwen2.5", "qwen3"}));
    c->add_flag("--no-thinking", no_thinking, "Qwen3: an empty <think> block in the prompt (enable_thinking=False)");
    c->add_option("--attention", attention,
                  "attention option over the folder's, KEY=VALUE (repeatable): variant=two_pass, ... "
                  "(attnlab config fields --section model)");
    c->add_option("--device", device, "cpu (default) or cuda");
    c->add_option("--dtype", dtype, "f32, bf16 (CUDA) or f64 (CPU); default bf16 on cuda, f32 on cpu");
  }
};

// The resolved settings for a summary file.
inline nlohmann::ordered_json generation_settings_json(const GenerationConfig& g) {
  nlohmann::ordered_json j;
  j["do_sample"] = g.do_sample;
  j["temperature"] = g.temperature;
  j["top_k"] = g.top_k;
  j["top_p"] = g.top_p;
  j["repetition_penalty"] = g.repetition_penalty;
  j["max_new_tokens"] = g.max_new_tokens;
  j["stop_tokens"] = g.stop_tokens;
  return j;
}

inline std::string generation_settings_line(const GenerationConfig& g) {
  char buf[200];
  if (!g.do_sample)
    std::snprintf(buf, sizeof buf, "greedy, up to %lld new tokens", (long long)g.max_new_tokens);
  else
    std::snprintf(buf, sizeof buf, "sampling (temperature %g, top-k %lld, top-p %g, repetition penalty %g), up to %lld new tokens",
                  double(g.temperature), (long long)g.top_k, g.top_p, double(g.repetition_penalty),
                  (long long)g.max_new_tokens);
  return buf;
}

}  // namespace attnlab::cli
