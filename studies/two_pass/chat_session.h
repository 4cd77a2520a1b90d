#pragma once
// One conversation with a model (attnlab chat, and the prompts of attnlab eval gsm8k).
//
// Prompts: the whole conversation so far, rendered anew each turn:
//   - with a chat template (Qwen2/2.5/3, data/chat_template.h): every message, then the generation
//     prompt "<|im_start|>assistant\n" (Qwen3 with enable_thinking=false: an empty think block);
//   - without one (GPT-2, the from-scratch decoders, --chat-template none): a plain transcript,
//     "{system}\n\n" when there is a system message, then "User: {text}\n" and
//     "Assistant: {text}\n" per message, ending in "Assistant:" (CHOICE: the shape base models
//     continue most naturally).
// The assistant's earlier replies enter the history as their decoded text (special tokens and the
// stop token dropped), as HF chat loops do.
//
// Stop tokens: the model's eos ids (generation_config.json, else config.json) and, with a chat
// template, the tokenizer's <|im_end|> and <|endoftext|>.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/models/generate.h"
#include "core/models/model.h"
#include "core/models/trainable_model.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "studies/two_pass/gate_report.h"

namespace attnlab::two_pass {

struct PromptFormat {
  std::optional<data::ChatFamily> family;  // nullopt: the plain transcript above
  std::optional<bool> enable_thinking;     // qwen3 only
};

// The format of `choice` ("auto", "none", "qwen2", "qwen2.5", "qwen3"): auto takes the family the
// tokenizer implies (data::chat_family_for_tokenizer), else none.
PromptFormat prompt_format(const std::string& choice, const std::string& tokenizer_source);
std::string prompt_format_name(const PromptFormat& f);

// The plain transcript of `messages` (roles system, user, assistant), ready for the assistant.
std::string plain_conversation(const std::vector<data::ChatMessage>& messages);
// The prompt's text and ids for the next assistant turn.
std::string conversation_text(const PromptFormat& f, const std::vector<data::ChatMessage>& messages);
std::vector<int32_t> encode_conversation(const data::Tokenizer& tok, const PromptFormat& f,
                                         const std::vector<data::ChatMessage>& messages);

// Adds the chat template's end tokens (<|im_end|>, <|endoftext|>, where the tokenizer has them) to
// `stops` (sorted, unique afterwards).
void add_template_stop_tokens(const data::Tokenizer& tok, const PromptFormat& f, std::vector<int32_t>& stops);

// One assistant turn: generates for `prompt` (one sequence). With `analyze_gates`, a ProbeSink asks
// every layer for its gate magnitudes, the KV cache holds one more slot, the last generated token
// is fed through one more decode step so every generated token has its own value (gate_report.h),
// and `gates` is filled; a model with no two-pass gates (or no KV-cache path) is the user-facing
// error of gate_report_from_captures.
struct ChatTurn {
  GenerationResult generation;
  std::optional<GateReport> gates;
};
ChatTurn run_chat_turn(TrainableModel& model, Ctx& ctx, const data::Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const GenerationConfig& config, bool analyze_gates, const std::string& model_name,
                       const TokenCallback& on_token = {});

// The generation of run_chat_turn's gate analysis, for any probe the caller attached to ctx:
// generates for `prompt` (one sequence) on a KV cache one slot longer than generation needs, then
// feeds the last generated token through one more decode step. Every layer is then called once for
// the prompt (call 0) and once per generated token i (call i + 1, whose input is token i). Learned
// positions (GPT-2) may leave no room for the extra step: one token fewer is generated then.
GenerationResult generate_with_last_step(Model& model, Ctx& ctx, const data::Tokenizer& tok,
                                         const std::vector<int32_t>& prompt, const GenerationConfig& config,
                                         const TokenCallback& on_token = {});

// A generated token's text for reports: decoded alone, special tokens spelled out.
std::string token_text(const data::Tokenizer& tok, int32_t id);

}  // namespace attnlab::two_pass
