#include "studies/backward_head/lm_metrics.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <regex>

namespace attnlab::studies::backward_head {

namespace {

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Trimmed, "$" signs dropped, one trailing period dropped.
std::string clean(const std::string& s) {
  std::string t;
  for (char c : trim(s))
    if (c != '$') t += c;
  t = trim(t);
  if (!t.empty() && t.back() == '.') t.pop_back();
  return trim(t);
}

const std::regex& number_re() {
  static const std::regex re(R"(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+)");
  return re;
}

double plain_number(const std::string& s) {
  std::string t;
  for (char c : s)
    if (c != ',') t += c;
  return std::stod(t);
}

}  // namespace

void TokenMetrics::add(int32_t target, double target_logp, int32_t predicted) {
  ++n_;
  nll_ -= target_logp;
  if (predicted == target) {
    ++correct_;
    ++per_id_[target].tp;
  } else {
    ++per_id_[predicted].fp;
    ++per_id_[target].fn;
  }
}

double TokenMetrics::cross_entropy() const { return n_ ? nll_ / double(n_) : std::numeric_limits<double>::quiet_NaN(); }
double TokenMetrics::perplexity() const { return std::exp(cross_entropy()); }
double TokenMetrics::accuracy() const { return ratio(double(correct_), double(n_)); }

double TokenMetrics::macro_precision() const {
  double s = 0;
  for (const auto& [id, c] : per_id_) s += ratio(double(c.tp), double(c.tp + c.fp));
  return ratio(s, double(per_id_.size()));
}

double TokenMetrics::macro_recall() const {
  double s = 0;
  for (const auto& [id, c] : per_id_) s += ratio(double(c.tp), double(c.tp + c.fn));
  return ratio(s, double(per_id_.size()));
}

double TokenMetrics::macro_f1() const {
  double s = 0;
  for (const auto& [id, c] : per_id_) {
    const double p = ratio(double(c.tp), double(c.tp + c.fp)), r = ratio(double(c.tp), double(c.tp + c.fn));
    s += ratio(2 * p * r, p + r);
  }
  return ratio(s, double(per_id_.size()));
}

nlohmann::ordered_json TokenMetrics::to_json() const {
  return {{"target_tokens", n_},         {"cross_entropy", cross_entropy()}, {"perplexity", perplexity()},
          {"token_accuracy", accuracy()}, {"macro_precision", macro_precision()},
          {"macro_recall", macro_recall()}, {"macro_f1", macro_f1()},         {"classes", int64_t(per_id_.size())}};
}

std::optional<double> parse_number(const std::string& text) {
  const std::string s = clean(text);
  if (s.empty()) return std::nullopt;
  static const std::regex frac(R"(\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\})");
  static const std::regex slash(R"((-?\d+)\s*/\s*(-?\d+))");
  std::smatch m;
  if (std::regex_match(s, m, frac) || std::regex_match(s, m, slash)) {
    const double den = std::stod(m[2].str());
    if (den == 0) return std::nullopt;
    return std::stod(m[1].str()) / den;
  }
  if (std::regex_match(s, number_re())) return plain_number(s);
  return std::nullopt;
}

std::string final_answer_text(const std::string& generated) {
  const std::string key = "Final answer:";
  const size_t at = generated.rfind(key);
  if (at == std::string::npos) return "";
  std::string rest = generated.substr(at + key.size());
  const size_t nl = rest.find('\n');
  if (nl != std::string::npos) rest = rest.substr(0, nl);
  return trim(rest);
}

std::optional<double> parse_final_answer(const std::string& generated) {
  const std::string answer = final_answer_text(generated);
  if (auto v = parse_number(answer)) return v;
  std::smatch m;
  if (!answer.empty() && std::regex_search(answer, m, number_re())) return plain_number(m.str());
  std::optional<double> last;
  for (auto it = std::sregex_iterator(generated.begin(), generated.end(), number_re()); it != std::sregex_iterator();
       ++it)
    last = plain_number(it->str());
  return last;
}

void AnswerMetrics::add(const std::string& generated, const std::string& expected) {
  ++n_;
  const std::optional<double> want = parse_number(expected), got = parse_final_answer(generated);
  if (want && got) {
    ++parsed_;
    sq_ += (*got - *want) * (*got - *want);
    if (std::abs(*got - *want) <= 1e-6 * std::max(1.0, std::abs(*want))) ++exact_;
  } else if (!want) {
    if (clean(final_answer_text(generated)) == clean(expected) && !clean(expected).empty()) ++exact_;
  }
}

double AnswerMetrics::mse() const {
  return parsed_ ? sq_ / double(parsed_) : std::numeric_limits<double>::quiet_NaN();
}
double AnswerMetrics::rmse() const { return std::sqrt(mse()); }
double AnswerMetrics::coverage() const { return ratio(double(parsed_), double(n_)); }
double AnswerMetrics::exact_match() const { return ratio(double(exact_), double(n_)); }

nlohmann::ordered_json AnswerMetrics::to_json() const {
  nlohmann::ordered_json j = {{"records", n_}, {"parsed", parsed_}, {"coverage", coverage()},
                              {"exact_match", exact_match()}};
  // JSON has no NaN: null when no pair parsed.
  j["mse"] = parsed_ ? nlohmann::ordered_json(mse()) : nlohmann::ordered_json();
  j["rmse"] = parsed_ ? nlohmann::ordered_json(rmse()) : nlohmann::ordered_json();
  return j;
}

}  // namespace attnlab::studies::backward_head
