// Synthetic generators: outputs parse back with the corpus readers in the upstream schemas,
// GSM8K arithmetic is exact (checked by an evaluator written here), SST labels follow from the
// lexicon, OpenR1 flags agree with the boxed answers, and the same seed gives the same bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "data/corpus.h"
#include "data/data_test_util.h"
#include "data/sft.h"
#include "data/synth.h"

namespace attnlab::test {
namespace {
using data::SynthKind;
using nlohmann::json;

std::string synth(SynthKind kind, uint64_t n, uint64_t seed, const data::SentimentLexicon* lex = nullptr,
                  const std::string& format = "") {
  std::ostringstream out;
  EXPECT_EQ(data::write_synth(out, {.kind = kind, .n = n, .seed = seed, .format = format}, lex), n);
  return out.str();
}

// Records of `text` written as `file`, read back by the corpus reader.
std::vector<json> read_back(const ScratchDir& dir, const std::string& file, const std::string& text, data::CorpusFormat f) {
  write_text(dir / file, text);
  std::vector<json> recs;
  data::for_each_record({.format = f, .path = dir / file}, [&](const json& j, const std::string&) { recs.push_back(j); });
  return recs;
}

// Evaluates "a op b op c ..." left to right over integers (GSM8K's annotations here use one
// operator each, or chains of + and -); division must be exact.
int64_t evaluate(const std::string& expr) {
  std::istringstream in(expr);
  int64_t acc = 0, v = 0;
  char op = 0;
  EXPECT_TRUE(bool(in >> acc)) << expr;
  while (in >> op >> v) {
    switch (op) {
      case '+': acc += v; break;
      case '-': acc -= v; break;
      case '*': acc *= v; break;
      case '/':
        EXPECT_EQ(acc % v, 0) << "inexact division in " << expr;
        acc /= v;
        break;
      default: ADD_FAILURE() << "operator " << op << " in " << expr;
    }
  }
  return acc;
}

TEST(Synth, Gsm8kAnnotationsAreExactAndEndTheAnswer) {
  ScratchDir dir;
  const std::string text = synth(SynthKind::gsm8k, 300, 17);
  EXPECT_EQ(text, synth(SynthKind::gsm8k, 300, 17));
  EXPECT_NE(text, synth(SynthKind::gsm8k, 300, 18));
  const auto recs = read_back(dir, "gsm8k.jsonl", text, data::CorpusFormat::jsonl);
  ASSERT_EQ(recs.size(), 300u);
  const std::regex annotation(R"(<<([^=<>]+)=(-?\d+)>>(-?\d+))");
  const std::regex final_line(R"(\n#### (-?\d+)$)");
  for (const json& r : recs) {
    ASSERT_EQ(r.size(), 2u) << r.dump();
    const std::string q = r.at("question"), a = r.at("answer");
    EXPECT_FALSE(q.empty());
    int64_t last = 0;
    int steps = 0;
    for (auto it = std::sregex_iterator(a.begin(), a.end(), annotation); it != std::sregex_iterator(); ++it) {
      const int64_t claimed = std::stoll((*it)[2]);
      EXPECT_EQ(evaluate((*it)[1]), claimed) << a;
      EXPECT_EQ(std::stoll((*it)[3]), claimed) << "the text after >> repeats the result: " << a;
      last = claimed;
      ++steps;
    }
    EXPECT_GE(steps, 2) << a;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(a, m, final_line)) << a;
    EXPECT_EQ(std::stoll(m[1]), last) << a;
    EXPECT_GE(last, 0) << a;
  }
  // Record i does not depend on n.
  EXPECT_EQ(text.substr(0, text.find('\n')), synth(SynthKind::gsm8k, 1, 17).substr(0, text.find('\n')));
}

// Labels recomputed from the lexicon, independently of the generator's own bookkeeping.
void expect_labels_follow_valence(const std::vector<json>& recs, const data::SentimentLexicon& lex, bool sst2,
                                  const std::string& sentence_key) {
  std::map<int, int> count;
  for (const json& r : recs) {
    const std::string s = r.at(sentence_key);
    const int label = r.at("label").is_string() ? std::stoi(r.at("label").get<std::string>()) : r.at("label").get<int>();
    int valence = 0;
    std::istringstream words(s);
    for (std::string w; words >> w;)
      if (auto it = lex.valence.find(w); it != lex.valence.end()) valence += it->second;
    int want;
    if (sst2) {
      ASSERT_NE(valence, 0) << s;
      want = valence > 0;
    } else {
      want = valence <= -4 ? 0 : valence <= -1 ? 1 : valence == 0 ? 2 : valence <= 3 ? 3 : 4;
    }
    EXPECT_EQ(label, want) << s << " (valence " << valence << ")";
    EXPECT_TRUE(std::none_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) << s;
    ++count[label];
  }
  EXPECT_EQ(count.size(), sst2 ? 2u : 5u) << "every class occurs";
}

TEST(Synth, SstFilesReadBackAndLabelsFollowTheLexicon) {
  ScratchDir dir;
  for (const data::SentimentLexicon& lex : {data::load_sentiment_lexicon(), data::builtin_sentiment_lexicon()}) {
    SCOPED_TRACE(lex.source);
    // sst2: GLUE's TSV with a header row, sentences ending in a space.
    const std::string tsv = synth(SynthKind::sst2, 200, 5, &lex);
    EXPECT_EQ(tsv.substr(0, tsv.find('\n')), "sentence\tlabel");
    auto recs = read_back(dir, "sst2.tsv", tsv, data::CorpusFormat::tsv);
    ASSERT_EQ(recs.size(), 200u);
    for (const json& r : recs) EXPECT_EQ(r.at("sentence").get<std::string>().back(), ' ');
    expect_labels_follow_valence(recs, lex, true, "sentence");
    // The same rows as HF's glue/sst2 JSON (sentence, label, idx).
    recs = read_back(dir, "sst2.jsonl", synth(SynthKind::sst2, 200, 5, &lex, "jsonl"), data::CorpusFormat::jsonl);
    EXPECT_EQ(recs[7].at("idx"), 7);
    expect_labels_follow_valence(recs, lex, true, "sentence");
    // sst5: SetFit's JSONL (text, label, label_text), and the TSV variant.
    recs = read_back(dir, "sst5.jsonl", synth(SynthKind::sst5, 300, 5, &lex), data::CorpusFormat::jsonl);
    const std::vector<std::string> names = {"very negative", "negative", "neutral", "positive", "very positive"};
    for (const json& r : recs) EXPECT_EQ(r.at("label_text"), names[r.at("label").get<size_t>()]);
    expect_labels_follow_valence(recs, lex, false, "text");
    recs = read_back(dir, "sst5.tsv", synth(SynthKind::sst5, 300, 5, &lex, "tsv"), data::CorpusFormat::tsv);
    expect_labels_follow_valence(recs, lex, false, "text");
    // And the SFT field map accepts both layouts (class count inferred).
    data::SftOptions o{.format = data::SftFormat::sst};
    EXPECT_EQ(data::infer_sst_classes({.format = data::CorpusFormat::tsv, .path = dir / "sst2.tsv"}, o), 2);
    EXPECT_EQ(data::infer_sst_classes({.format = data::CorpusFormat::jsonl, .path = dir / "sst5.jsonl"}, o), 5);
  }
}

TEST(Synth, AfinnCsvParsing) {
  auto lex = data::parse_afinn_csv("word,valence\ngood,3\ncan't stand,-3\nmeh,0\nbad,-2\r\n", "afinn.csv");
  EXPECT_EQ(lex.valence, (std::map<std::string, int>{{"good", 3}, {"bad", -2}}));  // phrases and 0 dropped
  EXPECT_EQ(data::sentence_valence(lex, "good good bad film"), 4);
  EXPECT_NE(error_of([] { data::parse_afinn_csv("word,valence\nx,lots\n", "a.csv"); }).find("a.csv:2"), std::string::npos);
}

std::string boxed(const std::string& s) {
  const std::regex b(R"(\\boxed\{(-?\d+)\})");
  std::string last;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), b); it != std::sregex_iterator(); ++it) last = (*it)[1];
  return last;
}

TEST(Synth, OpenMathInstructSchema) {
  ScratchDir dir;
  auto recs = read_back(dir, "om.jsonl", synth(SynthKind::openmath, 200, 3), data::CorpusFormat::jsonl);
  ASSERT_EQ(recs.size(), 200u);
  std::map<std::string, int> sources;
  for (const json& r : recs) {
    ASSERT_EQ(r.size(), 4u) << r.dump();
    for (const char* k : {"problem", "generated_solution", "expected_answer", "problem_source"})
      ASSERT_TRUE(r.at(k).is_string()) << k;
    EXPECT_EQ(boxed(r.at("generated_solution")), r.at("expected_answer").get<std::string>()) << r.dump();
    ++sources[r.at("problem_source")];
  }
  for (const char* s : {"augmented_math", "math", "augmented_gsm8k", "gsm8k"}) EXPECT_GT(sources[s], 0) << s;
}

TEST(Synth, OpenR1SchemaFlagsAndSelection) {
  ScratchDir dir;
  auto recs = read_back(dir, "r1.jsonl", synth(SynthKind::openr1, 300, 9), data::CorpusFormat::jsonl);
  ASSERT_EQ(recs.size(), 300u);
  int no_correct = 0, later_first = 0, first_correct = 0;
  const std::regex uuid(R"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})");
  for (size_t i = 0; i < recs.size(); ++i) {
    const json& r = recs[i];
    for (const char* k : {"problem", "solution", "answer", "problem_type", "question_type", "source", "uuid",
                          "is_reasoning_complete", "generations", "correctness_math_verify", "correctness_llama",
                          "finish_reasons", "correctness_count", "messages"})
      ASSERT_TRUE(r.contains(k)) << k;
    const auto& gens = r.at("generations");
    const auto& flags = r.at("correctness_math_verify");
    ASSERT_GE(gens.size(), 2u);
    ASSERT_LE(gens.size(), 4u);
    ASSERT_EQ(flags.size(), gens.size());
    ASSERT_EQ(r.at("is_reasoning_complete").size(), gens.size());
    EXPECT_EQ(boxed(r.at("solution")), r.at("answer").get<std::string>());
    EXPECT_TRUE(std::regex_match(r.at("uuid").get<std::string>(), uuid)) << r.at("uuid");
    EXPECT_EQ(r.at("messages")[0].at("content"), r.at("problem"));
    int count = 0;
    int first_true = -1;
    for (size_t g = 0; g < gens.size(); ++g) {
      const std::string trace = gens[g];
      EXPECT_EQ(trace.rfind("<think>\n", 0), 0u) << trace;
      const bool correct = boxed(trace) == r.at("answer").get<std::string>();
      EXPECT_EQ(flags[g].get<bool>(), correct) << trace;
      if (correct && first_true < 0) first_true = int(g);
      if (r.at("is_reasoning_complete")[g].get<bool>()) EXPECT_NE(trace.find("</think>"), std::string::npos);
      count += correct;
    }
    EXPECT_EQ(r.at("correctness_count").get<int>(), count);
    // The selection rule picks the first verified trace, else the first one.
    const size_t picked = data::select_openr1_generation(r, "r1.jsonl:" + std::to_string(i + 1));
    EXPECT_EQ(picked, size_t(std::max(first_true, 0)));
    no_correct += first_true < 0;
    later_first += first_true > 0;
    first_correct += first_true == 0;
  }
  EXPECT_GT(no_correct, 10);
  EXPECT_GT(later_first, 10);
  EXPECT_GT(first_correct, 10);
}

}  // namespace
}  // namespace attnlab::test
