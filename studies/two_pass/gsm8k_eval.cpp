#include "studies/two_pass/gsm8k_eval.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>

#include "core/error.h"
#include "core/models/generate_any.h"

namespace attnlab::two_pass {

std::vector<std::vector<int32_t>> gsm8k_prompt_ids(const data::Tokenizer& tok, const PromptFormat& format,
                                                   const std::vector<data::Gsm8kRecord>& records) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(records.size());
  for (const data::Gsm8kRecord& r : records)
    out.push_back(encode_conversation(tok, format, {{"user", data::gsm8k_prompt(r.question)}}));
  return out;
}

Gsm8kModelResult evaluate_gsm8k(TrainableModel& model, Ctx& ctx, const data::Tokenizer& tok,
                                const std::vector<data::Gsm8kRecord>& records,
                                const std::vector<std::vector<int32_t>>& prompts, const GenerationConfig& config,
                                int64_t batch_size, const std::function<void(const Gsm8kModelResult&)>& on_batch) {
  CHECK(records.size() == prompts.size(), "eval gsm8k: ", records.size(), " records for ", prompts.size(), " prompts");
  CHECK(batch_size >= 1, "eval gsm8k: batch size must be ≥ 1, got ", batch_size);
  Gsm8kModelResult res;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t N = int64_t(records.size());
  for (int64_t first = 0; first < N; first += batch_size) {
    const int64_t end = std::min(N, first + batch_size);
    const std::vector<std::vector<int32_t>> batch(prompts.begin() + first, prompts.begin() + end);
    const GenerationResult g = generate_any(model, ctx, batch, config, &tok);
    if (res.length_note.empty()) res.length_note = g.length_note;
    for (int64_t i = first; i < end; ++i) {
      const size_t b = size_t(i - first);
      Gsm8kRow row;
      row.index = i;
      row.response = g.texts[b];
      row.score = data::score_gsm8k(row.response, records[size_t(i)].answer);
      row.new_tokens = int64_t(g.tokens[b].size());
      row.stopped = g.stopped[b];
      res.correct += row.score.correct;
      res.strict_correct += row.score.strict_correct;
      res.new_tokens += row.new_tokens;
      res.rows.push_back(std::move(row));
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_batch) on_batch(res);
  }
  return res;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

std::string answer_of(const std::optional<data::NumberMatch>& m) { return m ? data::format_number(m->value) : ""; }

std::ofstream open_csv(const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  INPUT_CHECK(f.good(), "eval gsm8k: cannot write '", path, "' (is --out writable?)");
  return f;
}

}  // namespace

void write_gsm8k_model_csv(const std::string& path, const std::vector<data::Gsm8kRecord>& records,
                           const Gsm8kModelResult& r) {
  std::ofstream f = open_csv(path);
  const std::string n = r.name;
  f << "index,question,true_answer," << n << "_answer," << n << "_correct," << n << "_strict_answer," << n
    << "_strict_correct,new_tokens,stopped,response\n";
  for (const Gsm8kRow& row : r.rows) {
    const data::Gsm8kRecord& rec = records.at(size_t(row.index));
    f << row.index << ',' << csv_field(rec.question) << ',' << answer_of(row.score.gold) << ','
      << answer_of(row.score.pred) << ',' << int(row.score.correct) << ',' << csv_field(row.score.strict.value_or(""))
      << ',' << int(row.score.strict_correct) << ',' << row.new_tokens << ',' << int(row.stopped) << ','
      << csv_field(row.response) << '\n';
  }
  INPUT_CHECK(f.good(), "eval gsm8k: writing '", path, "' failed (disk full?)");
}

void write_gsm8k_results_csv(const std::string& path, const std::vector<data::Gsm8kRecord>& records,
                             const std::vector<Gsm8kModelResult>& results) {
  std::ofstream f = open_csv(path);
  f << "question,true_answer";
  for (const Gsm8kModelResult& r : results) f << ',' << r.name << "_answer," << r.name << "_correct";
  f << '\n';
  const size_t n = results.empty() ? 0 : results[0].rows.size();
  for (size_t i = 0; i < n; ++i) {
    f << csv_field(records.at(i).question) << ',' << answer_of(results[0].rows[i].score.gold);
    for (const Gsm8kModelResult& r : results)
      f << ',' << answer_of(r.rows.at(i).score.pred) << ',' << int(r.rows.at(i).score.correct);
    f << '\n';
  }
  INPUT_CHECK(f.good(), "eval gsm8k: writing '", path, "' failed (disk full?)");
}

nlohmann::ordered_json gsm8k_summary_json(const std::string& data_path, const std::vector<Gsm8kModelResult>& results,
                                          const nlohmann::ordered_json& settings) {
  nlohmann::ordered_json j;
  j["data"] = data_path;
  j["records"] = results.empty() ? 0 : results[0].rows.size();
  j["settings"] = settings;
  j["models"] = nlohmann::ordered_json::array();
  for (const Gsm8kModelResult& r : results) {
    nlohmann::ordered_json m;
    m["name"] = r.name;
    m["path"] = r.path;
    m["accuracy"] = r.accuracy();
    m["correct"] = r.correct;
    m["strict_accuracy"] = r.strict_accuracy();
    m["strict_correct"] = r.strict_correct;
    m["records"] = r.rows.size();
    m["new_tokens"] = r.new_tokens;
    m["seconds"] = r.seconds;
    m["csv"] = "gsm8k_" + r.name + ".csv";
    if (!r.length_note.empty()) m["length_note"] = r.length_note;
    j["models"].push_back(m);
  }
  if (results.size() >= 2) {
    nlohmann::ordered_json d;
    for (size_t i = 1; i < results.size(); ++i)
      d[results[i].name + "_minus_" + results[0].name] = {
          {"accuracy", results[i].accuracy() - results[0].accuracy()},
          {"strict_accuracy", results[i].strict_accuracy() - results[0].strict_accuracy()}};
    j["difference"] = d;
  }
  return j;
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  return out.empty() ? "model" : out;
}

}  // namespace attnlab::two_pass
