#pragma once
// The `data:` section: the corpus or SFT records, the tokenizer, sequence length, loss mask
// and validation split (DESIGN.md §7).
#include <cstdint>
#include <optional>
#include <string>

#include "core/config/field.h"

namespace attnlab::config {

enum class DataFormat : uint8_t { text, wikitext, jsonl, tsv };
// SFT record schemas with built-in field maps (data.fields renames their fields).
enum class SftFormat : uint8_t { openr1, openmath, gsm8k, sst };
enum class LossOn : uint8_t { all, assistant };
// What one pretraining document is (data/corpus.h): auto = file for text, article for wikitext,
// row for jsonl/tsv.
enum class DocUnit : uint8_t { automatic, file, article, paragraph, line };

struct DataConfig {
  DataFormat format = DataFormat::text;
  std::string path;       // file or folder
  std::string tokenizer;  // gpt2 | qwen2.5 | qwen3 | a tokenizer file or folder
  int64_t seq_len = 0;
  StringMap fields;       // record field renames for SFT, e.g. {problem: question}
  std::optional<SftFormat> sft_format;
  LossOn loss_on = LossOn::all;
  double val_fraction = 0;
  std::optional<std::string> shard_dir;  // unset: <out_dir>/<name>/shards
  std::string text_field = "text";       // jsonl key / tsv column (name or 0-based index) of the text
  DocUnit doc_unit = DocUnit::automatic;
  bool tsv_header = true;                // the first TSV row names the columns
  bool wikitext_detokenize = false;      // undo wikitext's " @-@ ", " @,@ ", " @.@ " markers

  // The named tokenizers; anything else in `tokenizer` is a path.
  static bool is_named_tokenizer(const std::string& s);
};

void declare_fields(FieldBinder<DataConfig>& f);

}  // namespace attnlab::config
