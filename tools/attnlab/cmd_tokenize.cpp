// attnlab tokenize / detokenize: text <-> token ids with GPT-2, Qwen2.5, Qwen3 or any byte-level
// BPE tokenizer folder, optionally through a chat template.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/chat_template.h"
#include "data/input_check.h"
#include "data/tokenizer.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

constexpr const char* kTokenizerHelp =
    "gpt2, qwen2.5, qwen3 (from the asset cache: run `attnlab assets fetch` once), or a path: a folder "
    "with tokenizer.json, or with vocab.json + merges.txt, or a tokenizer.json file";

struct TokenizeOptions {
  std::string tokenizer;
  bool chat = false;
  std::string chat_template;
  bool generation_prompt = false;
  bool no_thinking = false;
  bool lines = false;
  bool no_added_tokens = false;
  bool mask = false;
  bool show_text = false;
  bool stats = false;
  bool skip_special = false;
};

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void print_ids(const std::vector<int32_t>& ids, std::string& out) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out.push_back(' ');
    out += std::to_string(ids[i]);
  }
  out.push_back('\n');
}

std::vector<data::ChatMessage> parse_chat(const std::string& input) {
  nlohmann::json j = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  INPUT_CHECK(!j.is_discarded(), "--chat reads a JSON conversation on stdin, e.g. ",
              "[{\"role\": \"user\", \"content\": \"Hi\"}] or {\"messages\": [...]}; stdin is not valid JSON");
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  INPUT_CHECK(j.is_array(), "--chat: expected a JSON array of messages (or {\"messages\": [...]})");
  std::vector<data::ChatMessage> messages;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    INPUT_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
                    m["content"].is_string(),
                "--chat: message ", i, " needs string fields \"role\" and \"content\", found ", m.dump());
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

void run_tokenize(const TokenizeOptions& o) {
  data::Tokenizer tok = data::Tokenizer::load(o.tokenizer);
  std::string input = read_stdin();
  auto t0 = std::chrono::steady_clock::now();
  std::string out;
  size_t token_count = 0;
  if (o.chat) {
    std::optional<data::ChatFamily> family = o.chat_template.empty()
                                                 ? data::chat_family_for_tokenizer(o.tokenizer)
                                                 : std::optional(data::parse_chat_family(o.chat_template));
    INPUT_CHECK(family.has_value(), "tokenizer '", o.tokenizer, "' has no known chat template; pass ",
                "--chat-template qwen2|qwen2.5|qwen3");
    data::ChatOptions copt;
    copt.add_generation_prompt = o.generation_prompt;
    if (o.no_thinking) copt.enable_thinking = false;
    data::EncodedChat e = data::encode_chat(tok, *family, parse_chat(input), copt);
    if (o.show_text) std::fprintf(stderr, "%s", e.text.c_str());
    print_ids(e.ids, out);
    if (o.mask) {
      for (size_t i = 0; i < e.assistant_mask.size(); ++i) {
        if (i) out.push_back(' ');
        out.push_back(e.assistant_mask[i] ? '1' : '0');
      }
      out.push_back('\n');
    }
    token_count = e.ids.size();
  } else {
    data::EncodeOptions eopt;
    eopt.match_added_tokens = !o.no_added_tokens;
    if (o.lines) {
      std::istringstream in(input);
      for (std::string line; std::getline(in, line);) {
        auto ids = tok.encode(line, eopt);
        token_count += ids.size();
        print_ids(ids, out);
      }
    } else {
      auto ids = tok.encode(input, eopt);
      token_count = ids.size();
      print_ids(ids, out);
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (o.stats)
    std::fprintf(stderr, "%zu bytes -> %zu tokens in %.3f s: %.0f tokens/s, %.2f MB/s (%s)\n", input.size(),
                 token_count, seconds, token_count / std::max(seconds, 1e-9), input.size() / std::max(seconds, 1e-9) / 1e6,
                 tok.source().c_str());
}

void run_detokenize(const TokenizeOptions& o) {
  data::Tokenizer tok = data::Tokenizer::load(o.tokenizer);
  std::string input = read_stdin();
  // Accept plain whitespace-separated ids and JSON-ish lists ("[1, 2, 3]").
  for (char& c : input)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(input);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    long v = std::strtol(word.c_str(), &end, 10);
    INPUT_CHECK(*end == '\0' && v >= INT32_MIN && v <= INT32_MAX, "detokenize: '", word,
                "' is not a token id; stdin should hold integers separated by spaces");
    ids.push_back(int32_t(v));
  }
  std::string text = tok.decode(ids, o.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

void setup(CLI::App& root) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* tz = root.add_subcommand(
      "tokenize",
      "Encode the text on stdin and print its token ids on one line, separated by spaces.\n"
      "Examples:\n"
      "  echo -n 'Hello, my dog is cute.' | attnlab tokenize --tokenizer gpt2\n"
      "  attnlab tokenize --tokenizer qwen3 --lines < sentences.txt\n"
      "  echo '[{\"role\":\"user\",\"content\":\"Hi\"}]' | attnlab tokenize --tokenizer qwen2.5 --chat "
      "--add-generation-prompt");
  tz->add_option("--tokenizer", o->tokenizer, kTokenizerHelp)->required();
  tz->add_flag("--chat", o->chat,
               "stdin is a JSON conversation ([{\"role\", \"content\"}, ...]) rendered with the chat template");
  tz->add_option("--chat-template", o->chat_template,
                 "qwen2, qwen2.5 or qwen3 (default: from the tokenizer name or its tokenizer_config.json)");
  tz->add_flag("--add-generation-prompt", o->generation_prompt, "With --chat: end with <|im_start|>assistant\\n");
  tz->add_flag("--no-thinking", o->no_thinking, "With --chat and qwen3: enable_thinking=false (empty think block)");
  tz->add_flag("--mask", o->mask, "With --chat: also print a line of 0/1, 1 on assistant tokens (the SFT loss mask)");
  tz->add_flag("--show-text", o->show_text, "With --chat: print the rendered template text to stderr");
  tz->add_flag("--lines", o->lines, "Encode each input line separately (without its newline); one output line each");
  tz->add_flag("--no-added-tokens", o->no_added_tokens,
               "Encode <|endoftext|>, <|im_start|>, ... as plain text instead of their special ids");
  tz->add_flag("--stats", o->stats, "Print bytes, tokens and tokens/s to stderr");
  tz->callback([o] { run_tokenize(*o); });

  auto* dt = root.add_subcommand("detokenize",
                                 "Decode token ids on stdin (separated by spaces or commas) and print the text.\n"
                                 "Example: echo 15496 11 616 3290 | attnlab detokenize --tokenizer gpt2");
  dt->add_option("--tokenizer", o->tokenizer, kTokenizerHelp)->required();
  dt->add_flag("--skip-special", o->skip_special, "Leave out special tokens (<|endoftext|>, <|im_start|>, ...)");
  dt->callback([o] { run_detokenize(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
