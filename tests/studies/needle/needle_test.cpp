// Needle contexts and the answer-to-noise analysis (METHODS §3.6, §3.7).
#include "studies/needle/needle.h"

#include <cmath>
#include <set>

#include "data/data_test_util.h"

namespace attnlab::test {
namespace {

using namespace attnlab::analysis;

TEST(NeedleSpan, TokensOverlappingACharacterRange) {
  // "The magic number" tokenised as ["The", " magic", " number"]: starts 0, 3, 9; text size 16.
  const auto ranges = token_char_ranges({0, 3, 9}, 16);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[1].begin, 3u);
  EXPECT_EQ(ranges[1].end, 9u);
  EXPECT_EQ(ranges[2].end, 16u);
  // "magic" = chars [4, 9): only token 1 (" magic" = [3, 9)).
  TokenRange t = tokens_overlapping(ranges, {4, 9});
  EXPECT_EQ(t.begin, 1);
  EXPECT_EQ(t.end, 2);
  // "c num" = [8, 13): tokens 1 and 2.
  t = tokens_overlapping(ranges, {8, 13});
  EXPECT_EQ(t.begin, 1);
  EXPECT_EQ(t.end, 3);
  // A range touching token 1's end only ([9, 9) is empty; [9, 10) is in token 2).
  t = tokens_overlapping(ranges, {9, 10});
  EXPECT_EQ(t.begin, 2);
  EXPECT_EQ(t.size(), 1);
  EXPECT_EQ(tokens_overlapping(ranges, {16, 20}).size(), 0);
}

TEST(NeedleSpan, TokenizedContextLocatesTheNeedleAndTheQuestion) {
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");  // one token per byte: spans are char ranges
  NeedleOptions opt;
  opt.context_length = 64;  // 16 words
  opt.samples = 1;
  opt.depths = {0.5};
  const NeedleContext c = generate_needle_contexts(opt).at(0);
  const NeedleTokens t = tokenize_needle_context(tok, c);
  EXPECT_EQ(int64_t(t.ids.size()), int64_t(c.text.size()));
  EXPECT_EQ(t.span.begin, int64_t(c.target_spans[0].begin));
  EXPECT_EQ(t.span.size(), int64_t(c.target_needle.size()));
  EXPECT_EQ(t.question.begin, int64_t(c.text.size() - std::string(kNeedleQuestion).size()));
  EXPECT_EQ(t.question.end, int64_t(c.text.size()));
  EXPECT_EQ(t.context, t.question.begin);
  // The bytes of the span spell the needle.
  std::string spelled;
  for (int64_t i = t.span.begin; i < t.span.end; ++i) spelled.push_back(char(t.ids[size_t(i)]));
  EXPECT_EQ(spelled, c.target_needle);
}

TEST(NeedleGenerator, DeterministicBySeedAndPlacesTheTargetAtItsDepth) {
  NeedleOptions opt;
  opt.samples = 3;
  const auto a = generate_needle_contexts(opt), b = generate_needle_contexts(opt);
  ASSERT_EQ(a.size(), 12u);  // 3 samples × 4 depths
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].text, b[i].text);
  opt.seed = 1;
  const auto other = generate_needle_contexts(opt);
  int differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += a[i].text != other[i].text;
  EXPECT_GT(differing, 10);

  const std::set<std::string> fillers = {"This", "is", "a", "document", "about", "various", "cities", "and", "their",
                                         "numbers."};
  for (const NeedleContext& c : a) {
    EXPECT_EQ(c.n_words, 511 / 4);  // 127
    ASSERT_EQ(c.target_slots.size(), 1u);
    EXPECT_EQ(c.target_slots[0], int64_t(std::floor(c.depth * 127)));
    EXPECT_GE(c.magic_number, 100);
    EXPECT_LE(c.magic_number, 999);
    EXPECT_EQ(c.text.substr(c.target_spans[0].begin, c.target_spans[0].end - c.target_spans[0].begin),
              "The magic number for City_0 is " + std::to_string(c.magic_number));
    // Walk the words: the needle sits after exactly target_slot words (fillers or distractors).
    const std::string body = c.text.substr(0, c.question.begin);
    EXPECT_EQ(c.text.substr(c.question.begin), kNeedleQuestion);
    std::set<int64_t> slots(c.distractor_slots.begin(), c.distractor_slots.end());
    EXPECT_EQ(slots.size(), 3u);
    EXPECT_FALSE(slots.count(c.target_slots[0]));
    int64_t slot = 0;
    size_t pos = 0;
    while (pos < body.size()) {
      if (slot == c.target_slots[0]) {
        EXPECT_EQ(pos, c.target_spans[0].begin);
        pos += c.target_needle.size() + 1;
      } else if (slots.count(slot)) {
        EXPECT_EQ(body.compare(pos, 25, "The magic number for City"), 0);
        pos = body.find(' ', pos + 31) + 1;  // "The magic number for City_k is NNN"
        if (pos == 0) pos = body.size();
      } else {
        const size_t end = body.find(' ', pos);
        const std::string w = body.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        EXPECT_TRUE(fillers.count(w)) << "'" << w << "'";
        pos = end == std::string::npos ? body.size() : end + 1;
      }
      ++slot;
    }
    EXPECT_EQ(slot, c.n_words);
  }

  opt.all_depths = true;
  const auto all = generate_needle_contexts(opt);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].target_slots, (std::vector<int64_t>{0, 31, 63, 95}));  // floor(d·127)
  for (size_t k = 0; k < 4; ++k)
    EXPECT_EQ(all[0].text.substr(all[0].target_spans[k].begin, all[0].target_needle.size()), all[0].target_needle);
}

TEST(NeedleAnalysis, MassesOnAHandCheckableMap) {
  // 6 keys: context = keys 0..4 (key 5 is the question token itself), span = keys [1, 3).
  // Row 0: 0.1 0.3 0.2 0.1 0.1 | 0.2   answer = 0.5, context noise = 0.1 + 0.1 + 0.1 = 0.3
  // Row 1: 0.0 0.1 0.1 0.4 0.2 | 0.2   answer = 0.2, noise = 0.0 + 0.4 + 0.2 = 0.6
  // answer_mass = (0.5 + 0.2)/2 = 0.35, noise_mass = (0.3 + 0.6)/2 = 0.45
  // per token: 0.35/2 = 0.175 and 0.45/3 = 0.15; ANR = 0.175/0.15 = 7/6; mass ratio = 0.35/0.45 = 7/9.
  const std::vector<std::vector<double>> rows = {{0.1, 0.3, 0.2, 0.1, 0.1, 0.2}, {0.0, 0.1, 0.1, 0.4, 0.2, 0.2}};
  const NeedleMasses m = needle_masses(rows, {1, 3}, 5);
  EXPECT_NEAR(m.answer_mass, 0.35, 1e-15);
  EXPECT_NEAR(m.noise_mass, 0.45, 1e-15);
  EXPECT_NEAR(m.answer_per_token, 0.175, 1e-15);
  EXPECT_NEAR(m.noise_per_token, 0.15, 1e-15);
  EXPECT_NEAR(m.anr, 7.0 / 6.0, 1e-14);
  EXPECT_NEAR(m.mass_ratio, 7.0 / 9.0, 1e-14);
  // Differential rows may be negative: A1 − λA2 = −0.1 on a noise key lowers the noise mass.
  const NeedleMasses d = needle_masses({{-0.1, 0.5, 0.0}}, {1, 2}, 3);
  EXPECT_NEAR(d.noise_mass, -0.1, 1e-15);
  EXPECT_NEAR(d.anr, 0.5 / (-0.1 / 2), 1e-13);
  EXPECT_THROW(needle_masses(rows, {4, 6}, 5), Error);  // span beyond the context
}

TEST(NeedleAnalysis, AggregatesMeanAndSampleStdPerDepth) {
  NeedleMasses a, b, c;
  a.answer_mass = 1, b.answer_mass = 3, c.answer_mass = 10;
  a.anr = 2, b.anr = 4, c.anr = 5;
  const auto s = aggregate_by_depth({0.0, 0.0, 0.5}, {a, b, c});
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].depth, 0.0);
  EXPECT_EQ(s[0].n, 2);
  EXPECT_DOUBLE_EQ(s[0].mean_answer, 2.0);
  EXPECT_DOUBLE_EQ(s[0].std_answer, std::sqrt(2.0));  // ((1−2)² + (3−2)²)/(2−1)
  EXPECT_DOUBLE_EQ(s[0].mean_anr, 3.0);
  EXPECT_EQ(s[1].n, 1);
  EXPECT_DOUBLE_EQ(s[1].mean_answer, 10.0);
  EXPECT_DOUBLE_EQ(s[1].std_answer, 0.0);
}

TEST(NeedleAnalysis, SeedCompatibleMinMaxAndMeans) {
  // Map 2×2: [[−1, 1], [0, 3]]. Standard min-max: (x + 1)/(4 + 1e−8).
  const std::vector<double> map = {-1, 1, 0, 3};
  const auto s = seed_minmax(map, false);
  EXPECT_NEAR(s[0], 0.0, 1e-15);
  EXPECT_NEAR(s[1], 2 / (4 + 1e-8), 1e-15);
  EXPECT_NEAR(s[3], 4 / (4 + 1e-8), 1e-15);
  // Differential: to [−1, 1] (−1 + 2(x + 1)/(4 + 1e−8)), then to [0, 1]: the same ordering, ends ≈ 0 and ≈ 1.
  const auto d = seed_minmax(map, true);
  EXPECT_NEAR(d[0], 0.0, 1e-12);
  EXPECT_NEAR(d[3], 1.0, 1e-7);
  EXPECT_NEAR(d[1], 0.5, 1e-7);
  // Answer over span column 1: (1 + 3)/2 = 2; noise: whole map with column 1 zeroed: (−1 + 0)/4.
  const NeedleMasses m = seed_answer_noise(map, 2, 1, 5);  // span runs past T: clipped to column 1
  EXPECT_NEAR(m.answer_mass, 2.0, 1e-15);
  EXPECT_NEAR(m.noise_mass, -0.25, 1e-15);
}

}  // namespace
}  // namespace attnlab::test
