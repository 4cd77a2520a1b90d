#pragma once
// The evaluation metrics of METHODS §5.8 (`attnlab eval lm`), as accumulators over the held-out
// set, so they can be checked on hand-made cases:
//
// TokenMetrics (teacher forcing, target tokens only): CE = mean of −log p_t[y_t]; perplexity =
// exp(CE); token accuracy = fraction of positions whose argmax equals the target; precision,
// recall, F1 = macro averages over every token id that appears among the targets or the
// predictions: per id c, P_c = TP_c / (TP_c + FP_c), R_c = TP_c / (TP_c + FN_c), F1_c = 2 P_c R_c /
// (P_c + R_c), each 0 when its denominator is 0 (an id never predicted has P_c = 0).
//
// AnswerMetrics (generation): the answer of a generated solution is the number after the last
// "Final answer:" (else the last number of the text; parse_final_answer). When both it and
// expected_answer parse as numbers the pair counts for MSE = mean (ŷ − y)², RMSE = sqrt(MSE) and
// coverage = such pairs / records. Exact match: the parsed numbers are equal (|ŷ − y| ≤ 1e−6·max(1,
// |y|)), or, when the expected answer is not a number, the answer text (after "Final answer:",
// trimmed, trailing period dropped) equals it; exact = matches / records.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace attnlab::studies::backward_head {

class TokenMetrics {
 public:
  // One target position: the log-probability of the target and the argmax id.
  void add(int32_t target, double target_logp, int32_t predicted);
  int64_t count() const { return n_; }
  double cross_entropy() const;
  double perplexity() const;
  double accuracy() const;
  double macro_precision() const;
  double macro_recall() const;
  double macro_f1() const;
  nlohmann::ordered_json to_json() const;

 private:
  struct Counts {
    int64_t tp = 0, fp = 0, fn = 0;
  };
  std::map<int32_t, Counts> per_id_;
  int64_t n_ = 0, correct_ = 0;
  double nll_ = 0;
};

// A number as written in math answers: optional sign, digits with optional thousands commas, an
// optional decimal part; also "a/b" fractions and \frac{a}{b}. nullopt when `s` (trimmed, "$" and a
// trailing "." dropped) is not one.
std::optional<double> parse_number(const std::string& s);
// The answer text of a generated solution: what follows the last "Final answer:" (its first line,
// trimmed), or "" when there is none.
std::string final_answer_text(const std::string& generated);
// The number of a generated solution: parse_number(final_answer_text), else the first number in that
// text, else the last number anywhere in the text.
std::optional<double> parse_final_answer(const std::string& generated);

class AnswerMetrics {
 public:
  void add(const std::string& generated, const std::string& expected);
  int64_t count() const { return n_; }
  int64_t parsed() const { return parsed_; }
  double mse() const;   // NaN when no pair parsed
  double rmse() const;
  double coverage() const;
  double exact_match() const;
  nlohmann::ordered_json to_json() const;

 private:
  int64_t n_ = 0, parsed_ = 0, exact_ = 0;
  double sq_ = 0;
};

}  // namespace attnlab::studies::backward_head
