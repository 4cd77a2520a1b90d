#pragma once
// `attnlab eval gsm8k` (METHODS §1.7): one model over GSM8K records, and the files of a run.
//
// Each record's prompt is data::gsm8k_prompt(question) as the user turn of the model's chat
// template (or the plain transcript, chat_session.h). Records are generated in batches of
// `batch_size` in file order (prompts of different lengths share a batch: generate_any gives each
// the tokens it gets alone under greedy decoding); the response (decoded up to the stop token) is
// scored by both rules of data/gsm8k.h.
//
// Files under the output folder:
//   gsm8k_<name>.csv     per model: index, question, true_answer, <name>_answer, <name>_correct,
//                        <name>_strict_answer, <name>_strict_correct, new_tokens, stopped, response
//   gsm8k_results.csv    every model side by side, the layout of the original eval.py:
//                        question, true_answer, then <name>_answer, <name>_correct per model
//                        (names two_pass and original give exactly §1.7's columns)
//   summary.json         the data file, the settings, per model the accuracy under both rules, the
//                        counts, tokens and seconds; with two models or more, each one's accuracy
//                        minus the first's
// Answers are the parsed numbers ("" when the text holds none); correct columns are 1 or 0.
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/models/generate.h"
#include "core/models/trainable_model.h"
#include "data/gsm8k.h"
#include "studies/two_pass/chat_session.h"

namespace attnlab::two_pass {

struct Gsm8kRow {
  int64_t index = 0;  // record index in the run (0-based)
  std::string response;
  data::Gsm8kScore score;
  int64_t new_tokens = 0;
  bool stopped = false;  // ended by a stop token (else by max_new_tokens)
};

struct Gsm8kModelResult {
  std::string name, path;
  std::vector<Gsm8kRow> rows;
  int64_t correct = 0, strict_correct = 0;
  int64_t new_tokens = 0;
  double seconds = 0;
  std::string length_note;  // the first note generation gave (positions)
  double accuracy() const { return rows.empty() ? 0 : double(correct) / double(rows.size()); }
  double strict_accuracy() const { return rows.empty() ? 0 : double(strict_correct) / double(rows.size()); }
};

// The prompt ids of every record.
std::vector<std::vector<int32_t>> gsm8k_prompt_ids(const data::Tokenizer& tok, const PromptFormat& format,
                                                   const std::vector<data::Gsm8kRecord>& records);

// Generates and scores every record. `on_batch` runs after each batch with the result so far.
Gsm8kModelResult evaluate_gsm8k(TrainableModel& model, Ctx& ctx, const data::Tokenizer& tok,
                                const std::vector<data::Gsm8kRecord>& records,
                                const std::vector<std::vector<int32_t>>& prompts, const GenerationConfig& config,
                                int64_t batch_size,
                                const std::function<void(const Gsm8kModelResult&)>& on_batch = {});

// One CSV field: quoted (doubling quotes) when it holds a comma, quote, CR or LF (RFC 4180).
std::string csv_field(const std::string& s);

void write_gsm8k_model_csv(const std::string& path, const std::vector<data::Gsm8kRecord>& records,
                           const Gsm8kModelResult& r);
void write_gsm8k_results_csv(const std::string& path, const std::vector<data::Gsm8kRecord>& records,
                             const std::vector<Gsm8kModelResult>& results);
nlohmann::ordered_json gsm8k_summary_json(const std::string& data_path, const std::vector<Gsm8kModelResult>& results,
                                          const nlohmann::ordered_json& settings);

// A name usable in file names and CSV columns: characters outside [A-Za-z0-9._-] become '_'.
std::string safe_name(const std::string& s);

}  // namespace attnlab::two_pass
