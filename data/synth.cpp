// Synthetic GSM8K, OpenMathInstruct-2 and OpenR1-Math records (synth.h); SST is in synth_sst.cpp.
#include "data/synth.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "data/input_check.h"
#include "data/seeded_rng.h"

namespace attnlab::data {

namespace {

using std::to_string;

// Streams of SeededRng per generator, so records of different kinds never share draws. Each
// record has its own generator (seed, stream + index): record i does not depend on n.
constexpr uint64_t kGsmStream = 0x47534d00000000ull;
constexpr uint64_t kOpenMathStream = 0x4f4d0000000000ull;
constexpr uint64_t kOpenR1Stream = 0x52310000000000ull;

const std::vector<std::string> kNames = {"Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis",
                                         "Tina",    "Mark", "Randy", "Joy",   "Marcus", "Ali",   "Priya", "Sofia"};
const std::vector<std::string> kItems = {"clips", "cupcakes", "stickers", "bracelets", "marbles", "pencils", "cookies"};

// "a op b = <<a op b=c>>c"-style step pieces.
std::string ann(const std::string& expr, int64_t result) {
  return "<<" + expr + "=" + to_string(result) + ">>" + to_string(result);
}

Gsm8kProblem half_as_many(SeededRng& r) {
  const std::string name = r.pick(kNames), item = r.pick(kItems);
  const int64_t a = 2 * r.range(6, 60), h = a / 2, t = a + h;
  Gsm8kProblem p;
  p.question = name + " sold " + item + " to " + to_string(a) + " of their friends in April, and then sold half as many " +
               item + " in May. How many " + item + " did " + name + " sell altogether in April and May?";
  p.answer = name + " sold " + to_string(a) + "/2 = " + ann(to_string(a) + "/2", h) + " " + item + " in May.\n" + name +
             " sold " + to_string(a) + "+" + to_string(h) + " = " + ann(to_string(a) + "+" + to_string(h), t) + " " +
             item + " altogether in April and May.\n#### " + to_string(t);
  p.result = t;
  return p;
}

Gsm8kProblem hourly_pay(SeededRng& r) {
  const std::string name = r.pick(kNames);
  const int64_t rate = r.range(8, 30), hours = r.range(2, 9), days = r.range(2, 6);
  const int64_t per_day = rate * hours, total = per_day * days;
  Gsm8kProblem p;
  p.question = name + " earns $" + to_string(rate) + " an hour for babysitting and works " + to_string(hours) +
               " hours a day for " + to_string(days) + " days. How much does " + name + " earn?";
  p.answer = "Each day " + name + " earns " + to_string(rate) + "*" + to_string(hours) + " = $" +
             ann(to_string(rate) + "*" + to_string(hours), per_day) + ".\nIn " + to_string(days) + " days " + name +
             " earns " + to_string(per_day) + "*" + to_string(days) + " = $" +
             ann(to_string(per_day) + "*" + to_string(days), total) + ".\n#### " + to_string(total);
  p.result = total;
  return p;
}

Gsm8kProblem change_from_bill(SeededRng& r) {
  const std::string name = r.pick(kNames), item = r.pick(kItems);
  const int64_t packs = r.range(2, 9), price = r.range(2, 11), cost = packs * price;
  const int64_t bill = cost < 20 ? 20 : cost < 50 ? 50 : 100;
  const int64_t change = bill - cost;
  Gsm8kProblem p;
  p.question = name + " buys " + to_string(packs) + " packs of " + item + " at $" + to_string(price) +
               " each and pays with a $" + to_string(bill) + " bill. How much change does " + name + " get?";
  p.answer = "The packs cost " + to_string(packs) + "*" + to_string(price) + " = $" +
             ann(to_string(packs) + "*" + to_string(price), cost) + ".\n" + name + " gets " + to_string(bill) + "-" +
             to_string(cost) + " = $" + ann(to_string(bill) + "-" + to_string(cost), change) + " in change.\n#### " +
             to_string(change);
  p.result = change;
  return p;
}

Gsm8kProblem equal_shares(SeededRng& r) {
  const std::string name = r.pick(kNames), item = r.pick(kItems);
  const int64_t friends = r.range(2, 9), each = r.range(4, 25), total = friends * each, given = r.range(1, each - 1);
  const int64_t left = each - given;
  Gsm8kProblem p;
  p.question = name + " has " + to_string(total) + " " + item + " and shares them equally among " + to_string(friends) +
               " friends. Each friend then gives away " + to_string(given) + " " + item + ". How many " + item +
               " does each friend have left?";
  p.answer = "Each friend gets " + to_string(total) + "/" + to_string(friends) + " = " +
             ann(to_string(total) + "/" + to_string(friends), each) + " " + item + ".\nEach friend has " +
             to_string(each) + "-" + to_string(given) + " = " + ann(to_string(each) + "-" + to_string(given), left) +
             " " + item + " left.\n#### " + to_string(left);
  p.result = left;
  return p;
}

Gsm8kProblem orchard(SeededRng& r) {
  static const std::vector<std::pair<std::string, std::string>> crops = {
      {"apple trees", "apples"}, {"tomato plants", "tomatoes"}, {"pepper plants", "peppers"}, {"lemon trees", "lemons"}};
  const auto& [plant, fruit] = r.pick(crops);
  const int64_t rows = r.range(3, 15), per_row = r.range(4, 20), yield = r.range(2, 12);
  const int64_t plants = rows * per_row, harvest = plants * yield;
  Gsm8kProblem p;
  p.question = "A farmer has " + to_string(rows) + " rows of " + plant + " with " + to_string(per_row) +
               " in each row. Each one produces " + to_string(yield) + " " + fruit + ". How many " + fruit +
               " does the farmer harvest?";
  p.answer = "There are " + to_string(rows) + "*" + to_string(per_row) + " = " +
             ann(to_string(rows) + "*" + to_string(per_row), plants) + " " + plant + ".\nThe farmer harvests " +
             to_string(plants) + "*" + to_string(yield) + " = " + ann(to_string(plants) + "*" + to_string(yield), harvest) +
             " " + fruit + ".\n#### " + to_string(harvest);
  p.result = harvest;
  return p;
}

Gsm8kProblem savings(SeededRng& r) {
  static const std::vector<std::string> things = {"bike", "video game", "pair of shoes", "jacket", "telescope"};
  const std::string name = r.pick(kNames), thing = r.pick(things);
  const int64_t weekly = r.range(5, 40), weeks = r.range(3, 12), saved = weekly * weeks;
  const int64_t gift = r.range(5, 50), total = saved + gift, spent = r.range(1, total - 1), left = total - spent;
  Gsm8kProblem p;
  p.question = name + " saves $" + to_string(weekly) + " every week for " + to_string(weeks) + " weeks and gets $" +
               to_string(gift) + " as a gift, then spends $" + to_string(spent) + " on a " + thing +
               ". How much money does " + name + " have left?";
  p.answer = name + " saves " + to_string(weekly) + "*" + to_string(weeks) + " = $" +
             ann(to_string(weekly) + "*" + to_string(weeks), saved) + ".\nWith the gift " + name + " has " +
             to_string(saved) + "+" + to_string(gift) + " = $" + ann(to_string(saved) + "+" + to_string(gift), total) +
             ".\nAfter buying the " + thing + ", " + name + " has " + to_string(total) + "-" + to_string(spent) + " = $" +
             ann(to_string(total) + "-" + to_string(spent), left) + " left.\n#### " + to_string(left);
  p.result = left;
  return p;
}

// ---- OpenMathInstruct-2 ------------------------------------------------------------------------

std::string boxed_ending(int64_t answer) { return "\n\nSo, the answer is:\n\\[ \\boxed{" + to_string(answer) + "} \\]"; }

struct MathProblem {
  std::string problem, solution;  // solution ends in \boxed{answer}
  int64_t answer = 0;
  std::string kind;  // OpenMath problem_source / OpenR1 problem_type
};

MathProblem linear_equation(SeededRng& r) {
  const int64_t a = r.range(2, 12), x = r.range(-20, 30), b = r.range(-40, 40), c = a * x + b;
  MathProblem m;
  const std::string lhs = to_string(a) + "x " + (b < 0 ? "- " : "+ ") + to_string(std::abs(b));
  m.problem = "Solve for $x$: $" + lhs + " = " + to_string(c) + "$.";
  m.solution = "We isolate $x$. " + std::string(b < 0 ? "Adding " : "Subtracting ") + to_string(std::abs(b)) +
               (b < 0 ? " to" : " from") + " both sides gives $" + to_string(a) + "x = " + to_string(c - b) +
               "$. Dividing both sides by " + to_string(a) + " gives $x = " + to_string(x) + "$." + boxed_ending(x);
  m.answer = x;
  m.kind = "Algebra";
  return m;
}

MathProblem remainder(SeededRng& r) {
  const int64_t d = r.range(3, 13), q = r.range(20, 900), rem = r.range(0, d - 1), n = q * d + rem;
  MathProblem m;
  m.problem = "What is the remainder when $" + to_string(n) + "$ is divided by $" + to_string(d) + "$?";
  m.solution = "We have $" + to_string(d) + " \\cdot " + to_string(q) + " = " + to_string(q * d) + "$ and $" +
               to_string(n) + " - " + to_string(q * d) + " = " + to_string(rem) + "$, which is less than $" +
               to_string(d) + "$." + boxed_ending(rem);
  m.answer = rem;
  m.kind = "Number Theory";
  return m;
}

MathProblem expression(SeededRng& r) {
  const int64_t a = r.range(2, 25), b = r.range(2, 25), c = r.range(1, 99), ab = a * b, v = ab - c;
  MathProblem m;
  m.problem = "What is the value of $" + to_string(a) + " \\cdot " + to_string(b) + " - " + to_string(c) + "$?";
  m.solution = "Multiplication comes first: $" + to_string(a) + " \\cdot " + to_string(b) + " = " + to_string(ab) +
               "$. Then $" + to_string(ab) + " - " + to_string(c) + " = " + to_string(v) + "$." + boxed_ending(v);
  m.answer = v;
  m.kind = "Algebra";
  return m;
}

MathProblem series_sum(SeededRng& r) {
  const int64_t n = r.range(5, 200), s = n * (n + 1) / 2;
  MathProblem m;
  m.problem = "Find the sum of the first $" + to_string(n) + "$ positive integers.";
  m.solution = "The sum $1 + 2 + \\dots + n$ equals $\\frac{n(n+1)}{2}$. With $n = " + to_string(n) + "$ it is $\\frac{" +
               to_string(n) + " \\cdot " + to_string(n + 1) + "}{2} = " + to_string(s) + "$." + boxed_ending(s);
  m.answer = s;
  m.kind = "Combinatorics";
  return m;
}

MathProblem math_problem(SeededRng& r) {
  switch (r.below(4)) {
    case 0: return linear_equation(r);
    case 1: return remainder(r);
    case 2: return expression(r);
    default: return series_sum(r);
  }
}

// GSM8K's worked answer without the calculator annotations, as a prose solution.
std::string prose_of(const Gsm8kProblem& g) {
  std::string s;
  for (size_t i = 0; i < g.answer.size();) {
    if (g.answer.compare(i, 2, "<<") == 0) {
      i = g.answer.find(">>", i) + 2;
      continue;
    }
    if (g.answer.compare(i, 5, "\n####") == 0) break;
    s.push_back(g.answer[i++]);
  }
  return s;
}

nlohmann::ordered_json openmath_record(uint64_t seed, uint64_t index) {
  SeededRng r(seed, kOpenMathStream + index);
  nlohmann::ordered_json j;
  if (r.chance(0.3)) {
    const Gsm8kProblem g = make_gsm8k_problem(seed ^ 0x6f6d, index);
    j["problem"] = g.question;
    j["generated_solution"] = prose_of(g) + "\n\nSo the answer is \\boxed{" + to_string(g.result) + "}.";
    j["expected_answer"] = to_string(g.result);
    j["problem_source"] = r.chance(0.5) ? "augmented_gsm8k" : "gsm8k";
  } else {
    const MathProblem m = math_problem(r);
    j["problem"] = m.problem;
    j["generated_solution"] = m.solution;
    j["expected_answer"] = to_string(m.answer);
    j["problem_source"] = r.chance(0.6) ? "augmented_math" : "math";
  }
  return j;
}

// ---- OpenR1-Math -------------------------------------------------------------------------------

std::string uuid4(SeededRng& r) {
  const uint64_t hi = (r.next() & ~0xF000ull) | 0x4000ull;             // version 4
  const uint64_t lo = (r.next() & 0x3FFFFFFFFFFFFFFFull) | (1ull << 63);  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", unsigned(hi >> 32), unsigned((hi >> 16) & 0xFFFF),
                unsigned(hi & 0xFFFF), unsigned(lo >> 48), (unsigned long long)(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

std::string trace(const MathProblem& m, int64_t boxed, SeededRng& r, bool complete) {
  static const std::vector<std::string> openings = {"Okay, let's see.", "Alright, so I need to solve this.",
                                                    "Hmm, let me think about this problem.", "Let me work through this."};
  std::string think = "<think>\n" + r.pick(openings) + " The problem says: " + m.problem + "\n\n";
  think += boxed == m.answer ? "Working it out step by step. " + m.solution.substr(0, m.solution.find("\n\n")) +
                                   "\n\nLet me double-check that. Yes, the answer is " + to_string(boxed) + "."
                             : "I think the result is " + to_string(boxed) + ", though I went quickly here.";
  if (!complete) return think + "\n\nWait, let me reconsider";  // cut off (finish reason "length")
  return think + "\n</think>\n\nThe answer is $\\boxed{" + to_string(boxed) + "}$.";
}

nlohmann::ordered_json openr1_record(uint64_t seed, uint64_t index) {
  SeededRng r(seed, kOpenR1Stream + index);
  const MathProblem m = math_problem(r);
  const int count = int(r.range(2, 4));
  // Which traces are correct: none (~20%), the first, or a later one first.
  const uint64_t pattern = r.below(10);
  std::vector<bool> correct(size_t(count), false);
  if (pattern >= 2) {
    const size_t first = pattern >= 6 ? 0 : size_t(r.range(1, count - 1));
    correct[first] = true;
    for (size_t i = first + 1; i < correct.size(); ++i) correct[i] = r.chance(0.5);
  }
  nlohmann::ordered_json gens = nlohmann::ordered_json::array(), verify = nlohmann::ordered_json::array(),
                         complete = nlohmann::ordered_json::array(), finish = nlohmann::ordered_json::array(),
                         llama = nlohmann::ordered_json::array();
  int correct_count = 0;
  for (int i = 0; i < count; ++i) {
    const bool ok = correct[size_t(i)];
    const bool done = ok || r.chance(0.8);
    const int64_t wrong = m.answer + (r.chance(0.5) ? 1 : -1) * r.range(1, 9);
    gens.push_back(trace(m, ok ? m.answer : wrong, r, done));
    verify.push_back(ok);
    complete.push_back(done);
    finish.push_back(done ? "stop" : "length");
    llama.push_back(ok);
    correct_count += ok;
  }
  static const std::vector<std::string> sources = {"olympiads", "cn_contest", "aops_forum", "amc_aime", "number_theory"};
  static const std::vector<std::string> qtypes = {"math-word-problem", "math-word-problem", "MCQ", "proof"};
  nlohmann::ordered_json j;
  j["problem"] = m.problem;
  j["solution"] = m.solution;
  j["answer"] = to_string(m.answer);
  j["problem_type"] = m.kind;
  j["question_type"] = r.pick(qtypes);
  j["source"] = r.pick(sources);
  j["uuid"] = uuid4(r);
  j["is_reasoning_complete"] = complete;
  j["generations"] = gens;
  j["correctness_math_verify"] = verify;
  j["correctness_llama"] = r.chance(0.5) ? nlohmann::ordered_json(nullptr) : llama;
  j["finish_reasons"] = r.chance(0.5) ? nlohmann::ordered_json(nullptr) : finish;
  j["correctness_count"] = correct_count;
  j["messages"] = nlohmann::ordered_json::array(
      {{{"content", m.problem}, {"role", "user"}}, {{"content", m.solution}, {"role", "assistant"}}});
  return j;
}

}  // namespace

Gsm8kProblem make_gsm8k_problem(uint64_t seed, uint64_t index) {
  SeededRng r(seed, kGsmStream + index);
  switch (r.below(6)) {
    case 0: return half_as_many(r);
    case 1: return hourly_pay(r);
    case 2: return change_from_bill(r);
    case 3: return equal_shares(r);
    case 4: return orchard(r);
    default: return savings(r);
  }
}

SynthKind parse_synth_kind(const std::string& s) {
  if (s == "gsm8k") return SynthKind::gsm8k;
  if (s == "sst2") return SynthKind::sst2;
  if (s == "sst5") return SynthKind::sst5;
  if (s == "openr1") return SynthKind::openr1;
  if (s == "openmath") return SynthKind::openmath;
  FAIL_WITH("unknown synthetic data set '", s, "'; use gsm8k, sst2, sst5, openr1 or openmath");
}

const char* synth_kind_name(SynthKind k) {
  switch (k) {
    case SynthKind::gsm8k: return "gsm8k";
    case SynthKind::sst2: return "sst2";
    case SynthKind::sst5: return "sst5";
    case SynthKind::openr1: return "openr1";
    case SynthKind::openmath: return "openmath";
  }
  return "?";
}

uint64_t write_synth(std::ostream& out, const SynthOptions& opt, const SentimentLexicon* lexicon) {
  if (opt.kind == SynthKind::sst2 || opt.kind == SynthKind::sst5) {
    INPUT_CHECK(lexicon != nullptr, "SST generation needs a sentiment lexicon");
    return write_synth_sst(out, opt, *lexicon);
  }
  INPUT_CHECK(opt.format.empty() || opt.format == "jsonl", synth_kind_name(opt.kind), " is written as JSONL only");
  for (uint64_t i = 0; i < opt.n; ++i) {
    switch (opt.kind) {
      case SynthKind::gsm8k: {
        const Gsm8kProblem p = make_gsm8k_problem(opt.seed, i);
        nlohmann::ordered_json j;
        j["question"] = p.question;
        j["answer"] = p.answer;
        out << j.dump() << '\n';
        break;
      }
      case SynthKind::openmath: out << openmath_record(opt.seed, i).dump() << '\n'; break;
      case SynthKind::openr1: out << openr1_record(opt.seed, i).dump() << '\n'; break;
      default: break;
    }
  }
  INPUT_CHECK(out.good(), "writing the synthetic records failed (disk full?)");
  return opt.n;
}

}  // namespace attnlab::data
