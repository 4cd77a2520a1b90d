#include "data/gsm8k.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/error.h"

namespace attnlab::data {

namespace {

const char* kRecordFix =
    "each line must be one JSON object with string fields \"question\" and \"answer\" (GSM8K's schema; "
    "`attnlab data synth gsm8k` writes a valid file)";

std::string remove_all(std::string s, char c) {
  s.erase(std::remove(s.begin(), s.end(), c), s.end());
  return s;
}

}  // namespace

std::vector<Gsm8kRecord> parse_gsm8k_jsonl(const std::string& text, const std::string& source, int64_t limit) {
  std::vector<Gsm8kRecord> out;
  std::istringstream in(text);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (limit >= 0 && int64_t(out.size()) >= limit) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    const std::string where = "'" + source + "' line " + std::to_string(n);
    INPUT_CHECK(!j.is_discarded(), where, ": not valid JSON. Fix: ", kRecordFix);
    INPUT_CHECK(j.is_object(), where, ": a JSON ", j.type_name(), ", not an object. Fix: ", kRecordFix);
    for (const char* key : {"question", "answer"}) {
      INPUT_CHECK(j.contains(key), where, ": no \"", key, "\" field. Fix: ", kRecordFix);
      INPUT_CHECK(j[key].is_string(), where, ": \"", key, "\" is a ", j[key].type_name(), ", not a string. Fix: ",
                  kRecordFix);
    }
    out.push_back({j["question"].get<std::string>(), j["answer"].get<std::string>(), n});
  }
  return out;
}

std::vector<Gsm8kRecord> read_gsm8k_jsonl(const std::string& path, int64_t limit) {
  std::ifstream f(path, std::ios::binary);
  INPUT_CHECK(f.good(), "cannot read GSM8K file '", path,
              "'. Fix: pass --data with a JSONL file (e.g. `attnlab data synth gsm8k --n 50 --out gsm8k.jsonl`)");
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<Gsm8kRecord> r = parse_gsm8k_jsonl(ss.str(), path, limit);
  INPUT_CHECK(!r.empty(), "'", path, "' holds no records. Fix: ", kRecordFix);
  return r;
}

std::string gsm8k_prompt(const std::string& question) {
  return "Please solve the following math problem. Your answer must end with the final numerical result in the "
         "format: ####<final answer>. \n\nProblem: " +
         question;
}

std::optional<NumberMatch> last_number(const std::string& text) {
  static const std::regex number(R"(-?\$?[0-9,]*\.?[0-9]+)");
  std::optional<NumberMatch> last;
  for (std::sregex_iterator m(text.begin(), text.end(), number), end; m != end; ++m) last = NumberMatch{m->str(), 0};
  if (!last) return std::nullopt;
  const std::string digits = remove_all(remove_all(last->text, '$'), ',');
  char* stop = nullptr;
  last->value = std::strtod(digits.c_str(), &stop);
  if (stop != digits.c_str() + digits.size() || !std::isfinite(last->value)) return std::nullopt;
  return last;
}

bool numbers_match(const std::optional<NumberMatch>& pred, const std::optional<NumberMatch>& gold) {
  return pred && gold && std::fabs(pred->value - gold->value) < 0.01;
}

std::optional<std::string> strict_answer(const std::string& response) {
  static const std::regex strict(R"(#### (-?[0-9.,]+))");
  std::smatch m;
  if (!std::regex_search(response, m, strict)) return std::nullopt;
  return m[1].str();  // the group has no blanks, so lm-eval's strip() leaves it as it is
}

std::string strict_normalize(const std::string& text) {
  std::string s = remove_all(remove_all(text, ','), '$');
  const size_t marker = s.rfind("#### ");
  if (marker != std::string::npos) s.erase(0, marker + 5);
  if (!s.empty() && s.back() == '.') s.pop_back();
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool strict_correct(const std::string& response, const std::string& gold_answer) {
  const std::optional<std::string> a = strict_answer(response);
  return a && strict_normalize(*a) == strict_normalize(gold_answer);
}

Gsm8kScore score_gsm8k(const std::string& response, const std::string& gold_answer) {
  Gsm8kScore s;
  s.gold = last_number(gold_answer);
  s.pred = last_number(response);
  s.correct = numbers_match(s.pred, s.gold);
  s.strict = strict_answer(response);
  s.strict_correct = s.strict && strict_normalize(*s.strict) == strict_normalize(gold_answer);
  return s;
}

std::string format_number(double v) {
  char buf[64];
  if (std::fabs(v) < 1e15 && v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace attnlab::data
