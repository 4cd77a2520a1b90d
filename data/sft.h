#pragma once
// SFT records: the field maps of the supported schemas, the text each record becomes, and its
// tokens with a per-token target mask (1 on the tokens that carry loss with loss_on: assistant).
//
//   openr1    OpenR1-Math-220k (METHODS §1.6): the first generation whose correctness_math_verify
//             flag is true, else generations[0]; a two-turn chat [user: problem, assistant:
//             generation] through the tokenizer's chat template (Qwen2.5 adds its default system
//             prompt). Needs a tokenizer with a chat template.
//   openmath  OpenMathInstruct-2: with a chat template, [user: problem, assistant:
//             generated_solution]; without one (GPT-2, METHODS §5.6) the raw text
//             "Problem: {problem}\nSolution: " + target "{generated_solution}\nFinal answer:
//             {expected_answer}" + EOS.
//   gsm8k     GSM8K: with a chat template, [user: question, assistant: answer]; without one
//             "Question: {question}\nAnswer: " + target "{answer}" + EOS.
//   sst       SST-2 / SST-5 (METHODS §2.3): raw text, never a chat: "Sentence: {text} Label:" +
//             target " {word}", no EOS. The sentence is field `sentence` (glue/sst2) or, when a
//             record has none, `text` (SetFit/sst5); `label` is an integer or a string of digits
//             (TSV). Label words: 2 classes 0 negative, 1 positive; 5 classes 0 terrible, 1 bad,
//             2 neutral, 3 good, 4 great. The class count is inferred when not given: 5 when any
//             record has a `label_text` field or a label above 1, else 2.
//
// Target-mask convention: for chats, the mask is chat_template's assistant mask — the assistant
// message content through its <|im_end|>, not the "<|im_start|>assistant\n" header nor the "\n"
// after <|im_end|> (what HF's return_assistant_tokens_mask gives with a {% generation %} block
// around content + '<|im_end|>'). For raw text, every token that ends after the prompt's last
// byte, plus the EOS. With loss_on: all (the default, METHODS §1.6) the mask is ignored and every
// token but padding is a target.
//
// data.fields renames schema fields: {schema name: name in your files}, e.g. {question: problem}.
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/corpus.h"
#include "data/token_shard.h"
#include "data/tokenizer.h"

namespace attnlab::data {

enum class SftFormat : uint8_t { openr1, openmath, gsm8k, sst };
SftFormat parse_sft_format(const std::string& s);  // openr1 | openmath | gsm8k | sst
const char* sft_format_name(SftFormat f);

struct SftOptions {
  SftFormat format = SftFormat::gsm8k;
  std::map<std::string, std::string> fields;  // schema field -> field in the files
  int sst_classes = 0;                        // 2 or 5; 0: infer from the records
  std::optional<ChatFamily> chat;             // the chat template to render with (see above)
};

// What one record becomes before tokenisation.
struct SftText {
  bool chat = false;
  std::vector<ChatMessage> messages;  // chat: the conversation; assistant bodies are targets
  std::string prompt, target;         // raw text: prompt then target
  bool add_eos = false;               // raw text: an EOS token after the target (a target token)
};

// OpenR1: the index of the first generation whose correctness_math_verify flag is true, else 0.
// `where` (FILE:LINE) prefixes errors: generations missing or not a list of strings, flags not a
// list of booleans/nulls or not aligned with the generations.
size_t select_openr1_generation(const nlohmann::json& record, const std::string& where, const SftOptions& opt = {});

// Label word of an SST class (METHODS §2.3).
const std::string& sst_label_word(int classes, int label);
// 5 when any record has `label_text` or a label above 1, else 2 (reads the whole source).
int infer_sst_classes(const CorpusOptions& source, const SftOptions& opt);

// The text of one record; throws naming `where` and the missing field (and the data.fields fix).
SftText sft_text(const nlohmann::json& record, const std::string& where, const SftOptions& opt);
// Its tokens and target mask.
TokenizedDoc tokenize_sft(const SftText& text, const Tokenizer& tokenizer, std::optional<ChatFamily> chat);

// Tokenises the records of `source` (jsonl, or tsv for sst) into shards with a target mask,
// reusing valid shards as prepare_shards does. Fills opt.chat from the tokenizer when unset (an
// error for openr1 when the tokenizer has none) and infers the SST class count when 0.
// `tokenizer_name` is the name or path the tokenizer was loaded from (it decides the chat family).
PrepareResult prepare_sft_shards(const CorpusOptions& source, SftOptions opt, const Tokenizer& tokenizer,
                                 const std::string& tokenizer_name, const std::string& shard_dir,
                                 const PrepareOptions& prep = {});

}  // namespace attnlab::data
