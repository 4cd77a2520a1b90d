#pragma once
// GSM8K for evaluation (METHODS §1.7): the JSONL records, the prompt, and the two answer rules.
//
//   records   one JSON object per line with string fields "question" and "answer" (the HF `main`
//             config; the answer's last line is "#### N"). Other fields are ignored, blank lines
//             skipped. Anything else is an error naming the file, the line and the fix.
//   prompt    the original eval.py's user message: "Please solve the following math problem. Your
//             answer must end with the final numerical result in the format: ####<final answer>.
//             \n\nProblem: {question}" (sent through the model's chat template when it has one).
//   last-number rule (the original's, used for prediction and gold alike): the LAST match of
//             "optional minus, optional dollar sign, digits/commas, optional decimal point, digits"
//             (-?\$?[\d,]*\.?\d+), '$' and ',' removed, parsed as a number; correct iff both parse
//             and |pred − gold| < 0.01. A text with no number has no answer: wrong, never an error.
//   strict rule (lm-eval's gsm8k "strict-match"): the FIRST match of "#### (-?[0-9.,]+)" in the
//             response (no match: "[invalid]", wrong); prediction and gold (the whole answer text)
//             are compared as strings after lm-eval's normalisation: ',' and '$' removed, everything
//             through the last "#### " removed, one trailing '.' removed, lower-cased. The space
//             after #### is required, as in lm-eval, so a response ending "####42" (the format the
//             prompt above asks for) fails this rule and passes the last-number rule.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::data {

struct Gsm8kRecord {
  std::string question;
  std::string answer;  // the gold solution text, "#### N" at its end
  int64_t line = 0;    // 1-based line in the file
};

// Reads up to `limit` records (limit < 0: all). Errors name `path`, the line and the fix.
std::vector<Gsm8kRecord> read_gsm8k_jsonl(const std::string& path, int64_t limit = -1);
// The same from text (`source` names it in errors).
std::vector<Gsm8kRecord> parse_gsm8k_jsonl(const std::string& text, const std::string& source, int64_t limit = -1);

// The user message of METHODS §1.7.
std::string gsm8k_prompt(const std::string& question);

// The last-number rule: the matched text (e.g. "-$1,234.5") and its value, or nullopt.
struct NumberMatch {
  std::string text;
  double value = 0;
};
std::optional<NumberMatch> last_number(const std::string& text);
bool numbers_match(const std::optional<NumberMatch>& pred, const std::optional<NumberMatch>& gold);

// The strict rule: the first "#### N" group of a response, or nullopt ("[invalid]").
std::optional<std::string> strict_answer(const std::string& response);
// lm-eval's exact_match normalisation (see above), applied to predictions and gold alike.
std::string strict_normalize(const std::string& text);
// Whether the strict answer of `response` equals the normalised gold `answer`.
bool strict_correct(const std::string& response, const std::string& gold_answer);

// One scored response.
struct Gsm8kScore {
  std::optional<NumberMatch> gold, pred;
  bool correct = false;
  std::optional<std::string> strict;  // the strict rule's answer
  bool strict_correct = false;
};
Gsm8kScore score_gsm8k(const std::string& response, const std::string& gold_answer);

// A number as the CSV shows it: integers without a fraction, others with up to 10 significant digits.
std::string format_number(double v);

}  // namespace attnlab::data
