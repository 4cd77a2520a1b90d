// GSM8K records and answer rules (data/gsm8k.h): hand-made cases for the last-number rule and
// lm-eval's strict rule, and malformed files named by line.
#include "data/gsm8k.h"

#include <gtest/gtest.h>

#include <sstream>

#include "data/data_test_util.h"
#include "data/synth.h"

namespace attnlab::test {
namespace {

using data::last_number;

struct NumberCase {
  const char* text;
  bool found;
  const char* match;  // the matched text
  double value;
};

TEST(Gsm8kAnswer, LastNumberRule) {
  const NumberCase cases[] = {
      {"The answer is 42.", true, "42", 42},                   // a sentence's period is not a decimal point
      {"She is short by -7 dollars", true, "-7", -7},          // negative
      {"In all $1,234.50 was spent", true, "$1,234.50", 1234.5},  // dollar sign, comma, decimals
      {"It costs -$5 now", true, "-$5", -5},                   // minus before the dollar sign
      {"0.75 of 12 is 9", true, "9", 9},                       // the LAST number wins
      {"first 3, then 4.5", true, "4.5", 4.5},
      {"pour .5 liters", true, ".5", 0.5},                     // no leading digit
      {"#### 1,000,000", true, "1,000,000", 1e6},
      {"10-3", true, "-3", -3},                                // the original's pattern reads a minus sign here
      {"3 apples\n#### 18", true, "18", 18},
      {"no numbers here", false, "", 0},                       // no number: no answer
      {"", false, "", 0},
      {"$ , . -", false, "", 0},
  };
  for (const NumberCase& c : cases) {
    const auto m = last_number(c.text);
    ASSERT_EQ(m.has_value(), c.found) << c.text;
    if (!c.found) continue;
    EXPECT_EQ(m->text, c.match) << c.text;
    EXPECT_DOUBLE_EQ(m->value, c.value) << c.text;
  }
}

TEST(Gsm8kAnswer, NumbersMatchWithinOneHundredth) {
  EXPECT_TRUE(data::numbers_match(last_number("42.004"), last_number("#### 42")));
  EXPECT_FALSE(data::numbers_match(last_number("42.02"), last_number("#### 42")));
  EXPECT_FALSE(data::numbers_match(last_number("no number"), last_number("#### 42")));
  EXPECT_FALSE(data::numbers_match(last_number("42"), last_number("gold without a number")));
  EXPECT_TRUE(data::numbers_match(last_number("owes -$1,200"), last_number("#### -1200")));
}

TEST(Gsm8kAnswer, StrictRuleIsLmEvalsFirstHashMatch) {
  EXPECT_EQ(data::strict_answer("so the total is\n#### 42"), "42");
  EXPECT_EQ(data::strict_answer("#### 5 and later #### 6"), "5");  // the first match
  EXPECT_EQ(data::strict_answer("#### -3"), "-3");
  EXPECT_FALSE(data::strict_answer("####42").has_value());    // lm-eval requires the space
  EXPECT_FALSE(data::strict_answer("#### $5").has_value());   // '$' is not in the group
  EXPECT_FALSE(data::strict_answer("The answer is 42").has_value());

  const std::string gold = "She pays 6 * 3 = <<6*3=18>>18 dollars.\n#### 18";
  EXPECT_TRUE(data::strict_correct("#### 18", gold));
  EXPECT_TRUE(data::strict_correct("#### 18.", gold));     // a trailing period is ignored
  EXPECT_FALSE(data::strict_correct("#### 18.0", gold));   // strings, not numbers
  EXPECT_FALSE(data::strict_correct("#### 19", gold));
  EXPECT_FALSE(data::strict_correct("18", gold));
  EXPECT_TRUE(data::strict_correct("#### 1,234", "#### 1234"));  // commas ignored on both sides
  EXPECT_TRUE(data::strict_correct("#### 1234", "#### 1,234"));
  EXPECT_EQ(data::strict_normalize("a\n#### 1\n#### $2,000."), "2000");  // through the LAST "#### "
}

TEST(Gsm8kAnswer, ScoreAppliesBothRules) {
  const std::string gold = "Half of 36 is <<36/2=18>>18.\n#### 18";
  data::Gsm8kScore s = data::score_gsm8k("So she has 18.0 left.", gold);
  EXPECT_TRUE(s.correct);
  EXPECT_FALSE(s.strict_correct);
  EXPECT_DOUBLE_EQ(s.gold->value, 18);
  s = data::score_gsm8k("It is 17.\n#### 18", gold);  // the last number (18) is right, strict too
  EXPECT_TRUE(s.correct);
  EXPECT_TRUE(s.strict_correct);
  s = data::score_gsm8k("#### 18\nbut then 20", gold);  // strict reads the first ####, last-number the 20
  EXPECT_FALSE(s.correct);
  EXPECT_TRUE(s.strict_correct);
  s = data::score_gsm8k("I cannot say.", gold);
  EXPECT_FALSE(s.correct);
  EXPECT_FALSE(s.pred.has_value());
  EXPECT_FALSE(s.strict.has_value());
}

TEST(Gsm8kAnswer, SyntheticGoldAnswersParseToTheirResult) {
  for (uint64_t i = 0; i < 40; ++i) {
    const data::Gsm8kProblem p = data::make_gsm8k_problem(11, i);
    const auto m = last_number(p.answer);
    ASSERT_TRUE(m.has_value()) << p.answer;
    EXPECT_DOUBLE_EQ(m->value, double(p.result)) << p.answer;
    EXPECT_TRUE(data::strict_correct("#### " + std::to_string(p.result), p.answer)) << p.answer;
  }
}

TEST(Gsm8kRecords, ReadsQuestionAnswerAndLineNumbers) {
  const std::string text =
      "{\"question\": \"How many?\", \"answer\": \"2+2=4\\n#### 4\", \"extra\": 1}\n"
      "\n"
      "{\"answer\": \"#### 7\", \"question\": \"Q2\"}\r\n";
  const auto r = data::parse_gsm8k_jsonl(text, "t.jsonl");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].question, "How many?");
  EXPECT_EQ(r[0].answer, "2+2=4\n#### 4");
  EXPECT_EQ(r[0].line, 1);
  EXPECT_EQ(r[1].question, "Q2");
  EXPECT_EQ(r[1].line, 3);
  // A limit stops reading: a malformed line after it is never reached.
  EXPECT_EQ(data::parse_gsm8k_jsonl(text + "not json\n", "t.jsonl", 1).size(), 1u);
}

void expect_error(const std::string& text, const std::string& line, const std::string& what) {
  try {
    data::parse_gsm8k_jsonl(text, "bad.jsonl");
    ADD_FAILURE() << "no error for " << text;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'bad.jsonl' line " + line + ":"), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
    EXPECT_NE(m.find("Fix:"), std::string::npos) << m;
    EXPECT_NE(m.find("\"question\" and \"answer\""), std::string::npos) << m;
  }
}

TEST(Gsm8kRecords, MalformedLinesAreNamedWithTheFix) {
  const std::string good = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n";
  expect_error(good + "{\"question\": \"q\"\n", "2", "not valid JSON");
  expect_error(good + good + "[1, 2]\n", "3", "not an object");
  expect_error(good + "\n{\"question\": \"q\"}\n", "3", "no \"answer\" field");
  expect_error("{\"question\": 5, \"answer\": \"#### 1\"}\n", "1", "\"question\" is a number");
  expect_error(good + "{\"question\": \"q\", \"answer\": null}\n", "2", "\"answer\" is a null");
}

TEST(Gsm8kRecords, FileErrorsNameTheFile) {
  ScratchDir dir;
  const std::string path = dir / "g.jsonl";
  write_text(path, "{\"question\": \"q\", \"answer\": \"no number at all\"}\n{oops}\n");
  try {
    data::read_gsm8k_jsonl(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'" + path + "' line 2"), std::string::npos) << e.what();
  }
  // A gold answer without a number is a record like any other (scored wrong), not an error.
  EXPECT_EQ(data::read_gsm8k_jsonl(path, 1).size(), 1u);
  EXPECT_THROW(data::read_gsm8k_jsonl(dir / "missing.jsonl"), Error);
  write_text(dir / "empty.jsonl", "\n\n");
  EXPECT_THROW(data::read_gsm8k_jsonl(dir / "empty.jsonl"), Error);
}

TEST(Gsm8kRecords, SynthFileReadsBack) {
  std::ostringstream out;
  data::SynthOptions opt;
  opt.n = 7;
  opt.seed = 5;
  data::write_synth(out, opt);
  const auto r = data::parse_gsm8k_jsonl(out.str(), "synth");
  ASSERT_EQ(r.size(), 7u);
  for (uint64_t i = 0; i < 7; ++i) EXPECT_EQ(r[i].question, data::make_gsm8k_problem(5, i).question);
}

TEST(Gsm8kPrompt, IsTheOriginalUserMessage) {
  EXPECT_EQ(data::gsm8k_prompt("What is 2+2?"),
            "Please solve the following math problem. Your answer must end with the final numerical result in the "
            "format: ####<final answer>. \n\nProblem: What is 2+2?");
}

}  // namespace
}  // namespace attnlab::test
