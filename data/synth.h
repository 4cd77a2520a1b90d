#pragma once
// Seeded generators of data in the exact upstream schemas (shared/ASSETS.md, METHODS §7), so every
// pipeline runs and is tested without downloads. The same (n, seed) always gives the same bytes.
//
//   gsm8k     JSONL {"question", "answer"}: multi-step arithmetic word problems; the answer walks
//             through the steps with <<a*b=c>> calculator annotations (exact integer arithmetic,
//             divisions that divide) and ends with a line "#### N".
//   sst2      glue/sst2 as GLUE ships it: TSV with a header row "sentence\tlabel", lowercase
//             space-tokenised sentences with a trailing space, labels 0/1; or (jsonl) the HF
//             rows {"sentence", "label", "idx"}.
//   sst5      SetFit/sst5 as it ships: JSONL {"text", "label", "label_text"} with label_text
//             "very negative" ... "very positive"; or (tsv) "text\tlabel\tlabel_text".
//             SST labels follow from the words: the valence sum s of the sentence's words in the
//             lexicon gives sst2 1 if s > 0, 0 if s < 0 (never 0 sum); sst5 0 if s <= -4,
//             1 if -3 <= s <= -1, 2 if s = 0, 3 if 1 <= s <= 3, 4 if s >= 4.
//   openmath  OpenMathInstruct-2 JSONL {"problem", "generated_solution", "expected_answer",
//             "problem_source"}: equations, expressions, remainders and GSM-style problems whose
//             solution ends in \boxed{answer}.
//   openr1    OpenR1-Math-220k JSONL: problem, solution (ending in \boxed{}), answer, problem_type,
//             question_type, source, uuid, is_reasoning_complete, generations (2-4 traces
//             "<think>\n...\n</think>\n\n... \boxed{x}"), correctness_math_verify (aligned: true
//             exactly when the trace's boxed answer equals `answer`), correctness_llama,
//             finish_reasons, correctness_count, messages. Some records have no correct trace and
//             some have the first correct one after index 0, so the selection rule is exercised.
#include <cstdint>
#include <map>
#include <ostream>
#include <string>

namespace attnlab::data {

// Word -> valence (-5..5, non-zero), single lowercase ASCII words only.
struct SentimentLexicon {
  std::map<std::string, int> valence;
  std::string source;  // where it came from, for messages
};
// AFINN-111 from the asset cache (text/afinn-111.csv) when present, else a small built-in list.
SentimentLexicon load_sentiment_lexicon();
SentimentLexicon builtin_sentiment_lexicon();
SentimentLexicon parse_afinn_csv(const std::string& text, const std::string& source);
// Sum of the valences of the whitespace-separated words of `sentence` that are in the lexicon.
int sentence_valence(const SentimentLexicon& lex, const std::string& sentence);
int sst5_label_of_valence(int valence);

enum class SynthKind { gsm8k, sst2, sst5, openr1, openmath };
SynthKind parse_synth_kind(const std::string& s);
const char* synth_kind_name(SynthKind k);

struct SynthOptions {
  SynthKind kind = SynthKind::gsm8k;
  uint64_t n = 100;
  uint64_t seed = 0;
  std::string format;  // sst only: "tsv" or "jsonl"; empty: the upstream layout (sst2 tsv, sst5 jsonl)
};

// Writes the records; returns the number written. SST needs a lexicon.
uint64_t write_synth(std::ostream& out, const SynthOptions& opt, const SentimentLexicon* lexicon = nullptr);

// The SST part of write_synth.
uint64_t write_synth_sst(std::ostream& out, const SynthOptions& opt, const SentimentLexicon& lexicon);

// One GSM8K problem (exposed for the OpenMathInstruct-2 generator and tests).
struct Gsm8kProblem {
  std::string question, answer;  // answer with annotations and the final "#### N" line
  int64_t result = 0;
};
Gsm8kProblem make_gsm8k_problem(uint64_t seed, uint64_t index);

}  // namespace attnlab::data
