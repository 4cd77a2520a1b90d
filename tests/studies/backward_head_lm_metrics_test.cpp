// METHODS §5.8's metric definitions on cases small enough to check by hand (values worked out in
// the comments, not by the code under test).
#include <gtest/gtest.h>

#include <cmath>

#include "studies/backward_head/lm_metrics.h"

namespace attnlab::studies::backward_head {
namespace {

TEST(BackwardHeadLmMetrics, TokenMetricsOnAHandCheckedCase) {
  TokenMetrics m;
  m.add(1, std::log(0.5), 1);    // right
  m.add(2, std::log(0.25), 1);   // id 1 predicted for a 2
  m.add(2, std::log(0.5), 2);    // right
  m.add(3, std::log(0.125), 2);  // id 2 predicted for a 3
  // CE = (ln 2 + 2 ln 2 + ln 2 + 3 ln 2) / 4 = 7 ln 2 / 4.
  EXPECT_NEAR(m.cross_entropy(), 7 * std::log(2.0) / 4, 1e-15);
  EXPECT_NEAR(m.perplexity(), std::pow(2.0, 7.0 / 4), 1e-12);
  EXPECT_DOUBLE_EQ(m.accuracy(), 0.5);
  // id 1: TP 1, FP 1, FN 0 → P 1/2, R 1, F1 2/3; id 2: TP 1, FP 1, FN 1 → 1/2, 1/2, 1/2;
  // id 3: TP 0, FP 0, FN 1 → P 0 (undefined → 0), R 0, F1 0.
  EXPECT_NEAR(m.macro_precision(), 1.0 / 3, 1e-15);
  EXPECT_NEAR(m.macro_recall(), 1.0 / 2, 1e-15);
  EXPECT_NEAR(m.macro_f1(), 7.0 / 18, 1e-15);
  EXPECT_EQ(m.to_json()["classes"], 3);
}

TEST(BackwardHeadLmMetrics, NumbersAndFinalAnswersParse) {
  EXPECT_EQ(parse_number(" 1,234.5 "), 1234.5);
  EXPECT_EQ(parse_number("$-7$."), -7.0);
  EXPECT_EQ(parse_number("\\frac{3}{4}"), 0.75);
  EXPECT_EQ(parse_number("6/4"), 1.5);
  EXPECT_FALSE(parse_number("x^2").has_value());
  EXPECT_FALSE(parse_number("1/0").has_value());
  EXPECT_EQ(parse_final_answer("2 + 3 = 5\nFinal answer: 12\nmore 99"), 12.0);  // the line after the key
  EXPECT_EQ(parse_final_answer("Final answer: 1\nFinal answer: about 8 apples"), 8.0);  // the last key, first number
  EXPECT_EQ(parse_final_answer("we get 3 and then 17."), 17.0);                  // no key: the last number
  EXPECT_FALSE(parse_final_answer("no digits at all").has_value());
}

TEST(BackwardHeadLmMetrics, AnswerMetricsOnAHandCheckedCase) {
  AnswerMetrics a;
  a.add("so the total is 42\nFinal answer: 42", "42");        // exact, error 0
  a.add("3.5 then 10\nFinal answer: 1,000", "998");           // error 2 → 4
  a.add("I do not know", "7");                                // no number: not parsed
  a.add("x = 5", "\\frac{1}{2}");                             // 5 vs 0.5 → 20.25
  a.add("Final answer: x^2.", "x^2");                         // not a number: text match
  EXPECT_EQ(a.count(), 5);
  EXPECT_EQ(a.parsed(), 3);
  EXPECT_NEAR(a.mse(), (0 + 4 + 20.25) / 3, 1e-12);
  EXPECT_NEAR(a.rmse(), std::sqrt((0 + 4 + 20.25) / 3), 1e-12);
  EXPECT_DOUBLE_EQ(a.coverage(), 3.0 / 5);
  EXPECT_DOUBLE_EQ(a.exact_match(), 2.0 / 5);
  AnswerMetrics none;
  none.add("nothing", "3");
  EXPECT_TRUE(std::isnan(none.mse()));
  EXPECT_TRUE(none.to_json()["mse"].is_null());
}

}  // namespace
}  // namespace attnlab::studies::backward_head
