// attnlab generate --model DIR --prompt TEXT [--chat [--system TEXT]] [--max-new-tokens N]
// [--greedy | --temperature T --top-k K --top-p P] [--repetition-penalty R] [--seed S]
// [--device cpu|cuda] [--dtype f32|bf16|f64] [--batch N] [--stats]: text generation with a KV cache
// (core/models/generate.h), HF generate() semantics.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/models/generate.h"
#include "core/models/weights.h"
#include "data/chat_template.h"
#include "data/input_check.h"
#include "data/tokenizer.h"
#include "tools/attnlab/cli_options.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateOptions {
  std::string model;
  std::string prompt;
  bool chat = false;
  std::string system;
  std::string chat_template;
  bool no_thinking = false;
  std::string tokenizer;
  std::vector<std::string> attention;  // attention options over the folder's, key=value
  std::optional<int64_t> max_new_tokens;
  bool greedy = false;
  std::optional<float> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<float> repetition_penalty;
  std::vector<int32_t> stop_ids;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string dtype = "auto";
  int64_t batch = 1;
  bool stats = false;
};

bool folder_has_tokenizer(const std::string& dir) {
  return fs::exists(fs::path(dir) / "tokenizer.json") ||
         (fs::exists(fs::path(dir) / "vocab.json") && fs::exists(fs::path(dir) / "merges.txt"));
}

void run_generate(const GenerateOptions& o) {
  const DeviceDtype dd = parse_device_dtype("generate", o.device, o.dtype, /*allow_auto=*/true);
  const Device dev = dd.device;
  const DType dt = dd.dtype;
  ARG_CHECK(o.batch >= 1, "generate: --batch must be ≥ 1, got ", o.batch);
  ARG_CHECK(!o.greedy || (!o.temperature && !o.top_k && !o.top_p), "generate: --greedy takes no --temperature, ",
        "--top-k or --top-p (those turn sampling on)");
  ARG_CHECK(o.chat || o.system.empty(), "generate: --system needs --chat (it is the chat's system message)");

  // The tokenizer: the model folder's own files, else --tokenizer.
  const bool own_tokenizer = folder_has_tokenizer(o.model);
  INPUT_CHECK(own_tokenizer || !o.tokenizer.empty(), "generate: '", o.model, "' has no tokenizer files (tokenizer.json, or ",
        "vocab.json + merges.txt); pass --tokenizer gpt2|qwen2.5|qwen3|PATH");
  const std::string tokenizer_source = !o.tokenizer.empty() ? o.tokenizer : o.model;
  const data::Tokenizer tok = data::Tokenizer::load(tokenizer_source);

  std::vector<int32_t> prompt;
  if (o.chat) {
    std::optional<data::ChatFamily> family = o.chat_template.empty()
                                                 ? data::chat_family_for_tokenizer(tokenizer_source)
                                                 : std::optional(data::parse_chat_family(o.chat_template));
    INPUT_CHECK(family.has_value(), "generate: no known chat template for tokenizer '", tokenizer_source,
          "'; pass --chat-template qwen2|qwen2.5|qwen3 (GPT-2 has none: drop --chat)");
    std::vector<data::ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", o.prompt});
    data::ChatOptions copt;
    copt.add_generation_prompt = true;
    if (o.no_thinking) copt.enable_thinking = false;
    prompt = data::encode_chat(tok, *family, messages, copt).ids;
  } else {
    prompt = tok.encode(o.prompt);
  }
  INPUT_CHECK(!prompt.empty(), "generate: --prompt encodes to no tokens");

  Ctx ctx = dev == Device::cuda ? Ctx::make_cuda(0, o.seed) : Ctx::make_cpu(o.seed);
  auto model = load_model(o.model, {dev, dt, false}, ctx, o.attention);
  const ModelConfig& mc = model->config();

  // Settings: HF's defaults, then generation_config.json, then the flags.
  GenerationConfig g;
  g.max_new_tokens = 64;
  g.stop_tokens.assign(mc.eos_token_ids.begin(), mc.eos_token_ids.end());
  const fs::path gen_file = fs::path(o.model) / "generation_config.json";
  if (fs::exists(gen_file)) g = read_generation_config(gen_file.string(), g);
  if (o.max_new_tokens) g.max_new_tokens = *o.max_new_tokens;
  if (o.greedy) g.do_sample = false;
  if (o.temperature || o.top_k || o.top_p) g.do_sample = true;
  if (o.temperature) g.temperature = *o.temperature;
  if (o.top_k) g.top_k = *o.top_k;
  if (o.top_p) g.top_p = *o.top_p;
  if (o.repetition_penalty) g.repetition_penalty = *o.repetition_penalty;
  if (!o.stop_ids.empty()) g.stop_tokens = o.stop_ids;
  if (o.chat)
    if (auto end = tok.token_id("<|im_end|>")) g.stop_tokens.push_back(*end);
  std::sort(g.stop_tokens.begin(), g.stop_tokens.end());
  g.stop_tokens.erase(std::unique(g.stop_tokens.begin(), g.stop_tokens.end()), g.stop_tokens.end());
  for (int32_t id : prompt)
    INPUT_CHECK(id < mc.vocab_size, "generate: the tokenizer gave id ", id, ", outside the model's vocabulary of ",
          mc.vocab_size, " (is --tokenizer the model's?)");

  const std::vector<std::vector<int32_t>> prompts(size_t(o.batch), prompt);
  TextStreamer streamer(tok);
  TokenCallback stream;
  if (o.batch == 1)
    stream = [&](int64_t, int32_t id) {
      if (std::find(g.stop_tokens.begin(), g.stop_tokens.end(), id) != g.stop_tokens.end()) return;
      const std::string piece = streamer.push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  // Past the model's positions: a warning up front (RoPE), or a note where generation stopped (GPT-2).
  const GenerationLength len = plan_generation_length(mc, int64_t(prompt.size()), g.max_new_tokens);
  if (!len.truncated && !len.note.empty()) std::fprintf(stderr, "generate: %s\n", len.note.c_str());
  const GenerationResult r = generate(*model, ctx, prompts, g, &tok, stream);
  if (o.batch == 1) {
    const std::string rest = streamer.finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
  } else {
    for (size_t b = 0; b < r.texts.size(); ++b) std::printf("--- sequence %zu ---\n%s\n", b, r.texts[b].c_str());
  }
  std::fflush(stdout);
  if (len.truncated) std::fprintf(stderr, "generate: %s\n", r.length_note.c_str());

  if (o.stats) {
    const GenerationStats& s = r.stats;
    const int64_t stopped = std::count(r.stopped.begin(), r.stopped.end(), true);
    std::fprintf(stderr,
                 "model %s (%s, %s), batch %lld, %s\n"
                 "prompt %zu tokens per sequence; generated %lld tokens (%lld of %lld sequences hit a stop token)\n"
                 "prefill: %.1f tokens/s (%.3f s to the first token)\n"
                 "decode:  %.1f tokens/s (%lld steps × %lld sequences in %.3f s)\n",
                 o.model.c_str(), device_name(dev), dtype_name(dt), (long long)o.batch,
                 g.do_sample ? "sampling" : "greedy", prompt.size(), (long long)s.new_tokens, (long long)stopped,
                 (long long)o.batch, s.prefill_tokens_per_s(), s.prefill_seconds, s.decode_tokens_per_s(),
                 (long long)s.decode_steps, (long long)s.batch, s.decode_seconds);
  }
}

void setup(CLI::App& root) {
  auto o = std::make_shared<GenerateOptions>();
  auto* c = root.add_subcommand("generate", "Generate text from a prompt with a model folder (KV cache, HF sampling)");
  c->footer(
      "Encodes the prompt with the model folder's tokenizer (tokenizer.json, or vocab.json + merges.txt; else\n"
      "--tokenizer), generates up to --max-new-tokens tokens and prints the text as it comes. Sampling follows\n"
      "HF's generate(): settings start from transformers' defaults (greedy; top-k 50 when sampling), then the\n"
      "folder's generation_config.json (do_sample, temperature, top_k, top_p, repetition_penalty, eos_token_id),\n"
      "then these flags; --temperature, --top-k or --top-p turn sampling on, --greedy turns it off. Generation\n"
      "stops at an eos token (generation_config.json, else config.json; with --chat also <|im_end|>).\n"
      "With --chat the prompt is the user turn of the Qwen chat template (--system adds a system turn).\n"
      "--batch N runs N copies of the prompt at once (for throughput; with sampling each copy differs);\n"
      "--stats prints prefill and decode tokens/s to stderr.\n"
      "Examples:\n"
      "  attnlab generate --model ./gpt2 --prompt 'The meaning of life is' --max-new-tokens 40\n"
      "  attnlab generate --model ./Qwen2.5-0.5B-Instruct --chat --prompt 'What is 7 * 8?' --device cuda\n"
      "  attnlab generate --model ./qwen-tiny --tokenizer qwen2.5 --prompt Hi --batch 32 --stats --device cuda");
  c->add_option("--model", o->model, "HF model folder: config.json + model.safetensors (or shards)")->required();
  c->add_option("--prompt", o->prompt, "the prompt text (with --chat: the user's message)")->required();
  c->add_flag("--chat", o->chat, "wrap the prompt in the model's chat template, ready for the assistant's answer");
  c->add_option("--system", o->system, "with --chat: a system message before the prompt");
  c->add_option("--chat-template", o->chat_template,
                "with --chat: qwen2, qwen2.5 or qwen3 (default: from the tokenizer's tokenizer_config.json or name)");
  c->add_flag("--no-thinking", o->no_thinking, "with --chat on Qwen3: an empty <think> block (enable_thinking=False)");
  c->add_option("--tokenizer", o->tokenizer,
                "gpt2, qwen2.5, qwen3 (asset cache) or a tokenizer folder/file; default: the model folder's");
  c->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate at most (default: generation_config.json, else 64)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_flag("--greedy", o->greedy, "always take the most likely token");
  c->add_option("--temperature", o->temperature, "sample, dividing the logits by this (> 0; lower is more certain)");
  c->add_option("--top-k", o->top_k, "sample among the k most likely tokens (0: all)");
  c->add_option("--top-p", o->top_p, "sample among the most likely tokens whose probabilities add up to p (0 < p ≤ 1)");
  c->add_option("--repetition-penalty", o->repetition_penalty,
                "divide positive logits (multiply negative ones) of tokens already in the text by this (1: off)");
  c->add_option("--stop-id", o->stop_ids, "token id that ends a sequence (repeatable; replaces the eos ids)");
  c->add_option("--seed", o->seed, "random seed for sampling (default 0)");
  c->add_option("--attention", o->attention,
                "attention option over the folder's, KEY=VALUE (repeatable): norm=linear, controller=temperature, "
                "variant=differential, ... (attnlab config fields --section model)");
  c->add_option("--device", o->device, "cpu (default) or cuda");
  c->add_option("--dtype", o->dtype, "f32, bf16 (CUDA) or f64 (CPU); default bf16 on cuda, f32 on cpu");
  c->add_option("--batch", o->batch, "generate for N copies of the prompt at once (throughput)")
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  c->add_flag("--stats", o->stats, "print prefill and decode tokens/s to stderr");
  c->callback([o] { run_generate(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
