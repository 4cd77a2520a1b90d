#pragma once
// SST-2 / SST-5 for seed 001 (METHODS §2.3-2.5): the readers of the three shipped layouts, the
// ORIGINAL prompt texts and the ORIGINAL label-word match.
//
// Layouts (a file, or a folder of them; see data/corpus.h for BOM, blank lines, "\r"):
//   sst2_tsv     GLUE's SST-2.tsv: header row "sentence<TAB>label", labels 0/1. idx = data row
//                number from 0 (as the hub's glue/sst2 assigns it).
//   sst2_jsonl   the hub's glue/sst2 as JSON lines: {"idx", "sentence", "label"}; idx unique.
//   sst5_jsonl   SetFit/sst5: {"text", "label", "label_text"}, labels 0-4; idx = row number from
//                0 (METHODS §2.3 adds it so).
// Malformed input throws attnlab::Error naming FILE:LINE and the fix.
//
// Texts (ORIGINAL utility.py):
//   demonstration   "Sentence: {text} Label: {word} "    (trailing space)
//   context         the demonstrations concatenated in the sampled order ("" for zero-shot)
//   query prompt    context + "Sentence: {text} Label:"
//   FT record       "Sentence: {text} Label: {word}"     (loss on every token, METHODS §2.6)
// Label words: SST-2 0 negative, 1 positive; SST-5 0 terrible, 1 bad, 2 neutral, 3 good, 4 great.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::icl {

enum class SstTask : uint8_t { sst2, sst5 };
SstTask parse_sst_task(const std::string& s);  // sst2 | sst5
const char* sst_task_name(SstTask t);
int sst_classes(SstTask t);  // 2 or 5

enum class SstLayout : uint8_t { sst2_tsv, sst2_jsonl, sst5_jsonl };
const char* sst_layout_name(SstLayout l);
// sst2 + *.tsv -> sst2_tsv, sst2 + *.jsonl -> sst2_jsonl, sst5 + *.jsonl -> sst5_jsonl (for a
// folder: the kind of file it holds); anything else throws with the fix.
SstLayout sst_layout_for(SstTask task, const std::string& path);

struct SstRecord {
  int64_t idx = 0;   // the identity Rec2FTP's sets are made of
  std::string text;  // `sentence` (SST-2) or `text` (SST-5)
  int label = 0;
};

std::vector<SstRecord> read_sst(const std::string& path, SstLayout layout);
// read_sst(path, sst_layout_for(task, path)).
std::vector<SstRecord> read_sst(const std::string& path, SstTask task);

const std::string& label_word(SstTask task, int label);
std::string demonstration_text(SstTask task, const SstRecord& r);
std::string icl_context(SstTask task, std::span<const SstRecord> demonstrations);
std::string query_prompt(const std::string& context, const std::string& text);
std::string ft_record_text(SstTask task, const SstRecord& r);

// train_data.select(indices): the records at `indices`, in that order.
std::vector<SstRecord> select_records(std::span<const SstRecord> records, std::span<const int64_t> indices);

// ORIGINAL §2.4: the generated token, decoded with special tokens skipped, stripped of
// whitespace (Python's str.strip(): Unicode whitespace), equals the gold label word ignoring case.
bool label_matches(std::string_view generated, SstTask task, int gold_label);
// Python's str.strip() on UTF-8 text.
std::string_view python_strip(std::string_view s);

}  // namespace attnlab::icl
