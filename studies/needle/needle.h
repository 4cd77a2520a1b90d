#pragma once
// Needle contexts and the answer-to-noise analysis of seed 002 (METHODS §3.6, §3.7).
//
// Generator (ORIGINAL, §3.6): n_words = floor(context_length / 4) filler words drawn uniformly with
// replacement from "This is a document about various cities and their numbers."; the target needle
// "The magic number for City_0 is N" (N uniform in [100, 999]) replaces the word at slot
// floor(depth·n_words); three distractors "The magic number for City_k is N_k" replace words at
// distinct random slots no target uses; words are joined by single spaces and the query
// "What is the magic number for City_0?" is appended with no separator.
// CHOICE (default): one context per (sample, depth) holding one target; all_depths = the ORIGINAL
// single context per sample with the target at every depth slot.
//
// Default analysis (CHOICE, §3.7): rows = the question's tokens; span = the tokens whose character
// ranges overlap the target needle; context = every token before the question;
//   answer_mass = mean_rows Σ_{j∈span} A_rj,   noise_mass = mean_rows Σ_{j∈context∖span} A_rj,
//   answer_per_token = answer_mass / |span|,     noise_per_token = noise_mass / (|context| − |span|),
//   anr = answer_per_token / noise_per_token,    mass_ratio = answer_mass / noise_mass.
// A is the model's last-layer attention averaged over heads (DIFF: A1 − λA2 per head).
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::data {
class Tokenizer;
}

namespace attnlab::analysis {

struct NeedleOptions {
  int64_t context_length = 511;  // ORIGINAL passes the last training batch's length
  int64_t samples = 200;         // ORIGINAL 50
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75};
  bool all_depths = false;       // --needle-all-depths
  uint64_t seed = 0;
};

struct CharSpan {
  size_t begin = 0, end = 0;  // [begin, end) byte offsets in the text
};

struct NeedleContext {
  int64_t sample = 0;
  double depth = 0;                // this context's depth (all_depths: the first of the depths)
  std::string text;                // words + query
  int64_t n_words = 0;
  int magic_number = 0;            // the target's N
  std::string target_needle;       // "The magic number for City_0 is N"
  std::vector<int64_t> target_slots;   // word slots holding the target (one, or one per depth)
  std::vector<CharSpan> target_spans;  // their character ranges
  std::vector<int64_t> distractor_slots;
  CharSpan question;                   // the appended query
};

extern const char* const kNeedleFillerSentence;
extern const char* const kNeedleQuestion;

// Contexts ordered by sample, then depth (one per sample when all_depths). Deterministic in the seed.
std::vector<NeedleContext> generate_needle_contexts(const NeedleOptions& opt);

// [begin, end) of token i: its start offset to the next token's start (the last: text_size).
std::vector<CharSpan> token_char_ranges(const std::vector<size_t>& token_starts, size_t text_size);
// Indices of the tokens whose range overlaps `chars`, as [first, last + 1); {0, 0} when none.
struct TokenRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
TokenRange tokens_overlapping(const std::vector<CharSpan>& token_ranges, CharSpan chars);

// A needle context tokenised: ids, the target span (first target), the question rows, the context.
struct NeedleTokens {
  std::vector<int32_t> ids;
  TokenRange span;      // tokens overlapping the (first) target needle
  TokenRange question;  // tokens overlapping the query
  int64_t context = 0;  // tokens before the question
};
NeedleTokens tokenize_needle_context(const data::Tokenizer& tok, const NeedleContext& c);

struct NeedleMasses {
  double answer_mass = 0, noise_mass = 0, answer_per_token = 0, noise_per_token = 0, anr = 0, mass_ratio = 0;
};
// rows[r] = the attention row (over key positions 0..S−1) of question token r.
NeedleMasses needle_masses(const std::vector<std::vector<double>>& rows, TokenRange span, int64_t context);

struct DepthStats {
  double depth = 0;
  int64_t n = 0;
  double mean_answer = 0, std_answer = 0, mean_noise = 0, std_noise = 0;
  double mean_answer_per_token = 0, mean_noise_per_token = 0;
  double mean_anr = 0, std_anr = 0, mean_mass_ratio = 0;
  std::vector<double> answers, noises;  // per sample, for the JSON
};
// Mean and (sample, n − 1) standard deviation per depth; depths in first-seen order.
std::vector<DepthStats> aggregate_by_depth(const std::vector<double>& depths, const std::vector<NeedleMasses>& masses);

// ORIGINAL analysis helpers (--seed-compat-analysis, §3.7 ORIGINAL): min-max normalisation of a
// whole map (differential: to [−1, 1] first, then to [0, 1]; eps 1e−8 in the denominators), and
// the answer/noise means: answer = mean over all rows of the span columns [span_start,
// span_start + span_len) ∩ [0, T); noise = mean over the whole T×T map with those columns zeroed.
std::vector<double> seed_minmax(const std::vector<double>& map, bool differential);
NeedleMasses seed_answer_noise(const std::vector<double>& map, int64_t T, int64_t span_start, int64_t span_len);

}  // namespace attnlab::analysis
