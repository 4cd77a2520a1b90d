// Kendall's tau-b (SciPy's kendalltau, variant 'b') and the seed-001 Kendall pipelines.
//
// The hand values below were counted pair by pair with this snippet (P concordant, Q
// discordant, TX tied in x only, TY tied in y only; joint ties count in neither):
//   def naive(x, y):
//       P = Q = TX = TY = 0
//       for i in range(len(x)):
//           for j in range(i + 1, len(x)):
//               dx = (x[i] > x[j]) - (x[i] < x[j]); dy = (y[i] > y[j]) - (y[i] < y[j])
//               if dx == 0 and dy == 0: continue
//               if dx == 0: TX += 1
//               elif dy == 0: TY += 1
//               elif dx == dy: P += 1
//               else: Q += 1
//       return (P - Q) / math.sqrt((P + Q + TX) * (P + Q + TY))
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "studies/icl/kendall.h"
#include "studies/icl/py_random.h"

namespace attnlab::test {
namespace {
using icl::kendall_tau_b;
using V = std::vector<double>;

double tau(const V& x, const V& y) { return kendall_tau_b(std::span<const double>(x), std::span<const double>(y)); }

// An O(n²) pair count written independently of the library (the snippet above, in C++).
double naive_tau_b(const V& x, const V& y) {
  int64_t P = 0, Q = 0, TX = 0, TY = 0;
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = i + 1; j < x.size(); ++j) {
      const int dx = (x[i] > x[j]) - (x[i] < x[j]), dy = (y[i] > y[j]) - (y[i] < y[j]);
      if (dx == 0 && dy == 0) continue;
      if (dx == 0) ++TX;
      else if (dy == 0) ++TY;
      else if (dx == dy) ++P;
      else ++Q;
    }
  const double den = double(P + Q + TX) * double(P + Q + TY);
  return den > 0 ? double(P - Q) / std::sqrt(den) : NAN;
}

TEST(KendallTauB, HandCountedValues) {
  // No ties: P=7 Q=3 -> 4/10.
  EXPECT_NEAR(tau({1, 2, 3, 4, 5}, {3, 1, 2, 5, 4}), 0.4, 1e-15);
  // Ties in x: P=9 Q=4 TX=2 TY=0 -> 5/sqrt(15*13).
  EXPECT_NEAR(tau({1, 1, 2, 3, 3, 4}, {2, 5, 1, 4, 3, 6}), 5 / std::sqrt(195.0), 1e-15);
  // Ties in y: P=2 Q=6 TX=0 TY=2 -> -4/sqrt(8*10).
  EXPECT_NEAR(tau({0.5, 1.5, 2.5, 3.5, 4.5}, {7, 7, 1, 2, 2}), -4 / std::sqrt(80.0), 1e-15);
  // Ties in both, one joint tie (the first two points): P=9 Q=4 TX=3 TY=4 -> 5/sqrt(16*17).
  EXPECT_NEAR(tau({1, 1, 1, 2, 2, 3, 4}, {1, 1, 2, 2, 3, 3, 1}), 5 / std::sqrt(272.0), 1e-15);
  // Perfect orders.
  EXPECT_EQ(tau({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  EXPECT_EQ(tau({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
}

TEST(KendallTauB, TwoPointsAndDegenerateInputsAsSciPy) {
  EXPECT_EQ(tau({1, 2}, {3, 1}), -1.0);
  EXPECT_EQ(tau({1, 2}, {1, 3}), 1.0);
  // SciPy returns NaN when every pair is tied on one side, for n < 2, and for NaN inputs.
  EXPECT_TRUE(std::isnan(tau({1, 2}, {5, 5})));
  EXPECT_TRUE(std::isnan(tau({4, 4, 4, 4}, {1, 2, 3, 4})));
  EXPECT_TRUE(std::isnan(tau({1, 2, 3}, {0, 0, 0})));
  EXPECT_TRUE(std::isnan(tau({7, 7, 7}, {7, 7, 7})));
  EXPECT_TRUE(std::isnan(tau({1}, {2})));
  EXPECT_TRUE(std::isnan(tau({}, {})));
  EXPECT_TRUE(std::isnan(tau({1, NAN, 3}, {1, 2, 3})));
  EXPECT_THROW(tau({1, 2, 3}, {1, 2}), Error);
}

TEST(KendallTauB, MatchesPairCountingOnRandomTiedVectors) {
  std::mt19937_64 g(20260);
  for (size_t n : {3u, 5u, 37u, 211u, 499u}) {
    for (int range : {3, 11, 1000000}) {  // heavy ties, some ties, almost none
      std::uniform_int_distribution<int> d(0, range - 1);
      V x(n), y(n);
      for (size_t i = 0; i < n; ++i) {
        x[i] = d(g) * 0.25;
        y[i] = d(g) - range / 2;
      }
      const double want = naive_tau_b(x, y), got = tau(x, y);
      if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << "n=" << n;
      else EXPECT_NEAR(got, want, 1e-13) << "n=" << n << " range=" << range;
      // Symmetry and sign flip.
      if (!std::isnan(want)) {
        EXPECT_NEAR(tau(y, x), got, 1e-13);
        V neg(y);
        for (double& v : neg) v = -v;
        EXPECT_NEAR(tau(x, neg), -got, 1e-13);
      }
    }
  }
}

TEST(KendallTauB, FloatOverloadEqualsDouble) {
  const std::vector<float> x = {0.5f, 0.25f, 0.25f, 3.0f, -1.0f, 2.0f, 2.0f};
  const std::vector<float> y = {1.0f, 1.0f, 0.0f, 7.0f, -2.0f, 2.0f, 5.0f};
  EXPECT_EQ(kendall_tau_b(std::span<const float>(x), std::span<const float>(y)),
            tau(V(x.begin(), x.end()), V(y.begin(), y.end())));
  EXPECT_NEAR(tau(V(x.begin(), x.end()), V(y.begin(), y.end())),
              naive_tau_b(V(x.begin(), x.end()), V(y.begin(), y.end())), 1e-15);
}

TEST(KendallOriginal, InnerProductsAndHeadSums) {
  // Qd = [[1,2],[3,-1],[0,5]], q = [2,3]: ip = [8, 3, 15].
  const std::vector<float> Qd = {1, 2, 3, -1, 0, 5}, q = {2, 3};
  EXPECT_EQ(icl::query_inner_products(Qd, 3, 2, q), (V{8, 3, 15}));
  // probs [2 heads x 4 keys]; the first Ld = 3 keys summed over heads.
  const std::vector<float> probs = {0.5f, 0.25f, 0.125f, 0.125f, 0.25f, 0.25f, 0.5f, 0.0f};
  EXPECT_EQ(icl::heads_summed_prefix(probs, 2, 4, 3), (V{0.75, 0.5, 0.625}));
  EXPECT_THROW(icl::heads_summed_prefix(probs, 2, 4, 5), Error);
  EXPECT_THROW(icl::query_inner_products(Qd, 2, 2, q), Error);
}

TEST(KendallOriginal, SummarySkipsNaNsLikeTheOriginalAndPropagatesForThePaper) {
  const std::vector<V> taus = {{0.5, NAN, 0.25}, {NAN, NAN}, {-0.5, 0.1}};
  const icl::KendallSummary s = icl::summarize_kendall(taus, /*skip_nan=*/true);
  ASSERT_EQ(s.per_layer.size(), 3u);
  EXPECT_DOUBLE_EQ(s.per_layer[0], 0.375);
  EXPECT_EQ(s.per_layer[1], 0.0);  // `... if batch_taus else 0`
  EXPECT_DOUBLE_EQ(s.per_layer[2], -0.2);
  EXPECT_DOUBLE_EQ(s.mean, (0.375 + 0.0 - 0.2) / 3);
  EXPECT_EQ(s.nan_count, 3);
  const icl::KendallSummary p = icl::summarize_kendall(taus, /*skip_nan=*/false);
  EXPECT_TRUE(std::isnan(p.per_layer[0]));
  EXPECT_DOUBLE_EQ(p.per_layer[2], -0.2);
  EXPECT_TRUE(std::isnan(p.mean));
}

TEST(KendallOriginal, RandomBaselineCorrelatesColumnsAcrossExamples) {
  // a: 4 examples x 3 positions. The original transposes its U[0,1) matrix, so each position's
  // column over the examples is ranked against the noise column of that position.
  const V a = {0.1, 0.9, 0.3, 0.4, 0.2, 0.3, 0.7, 0.6, 0.3, 0.8, 0.5, 0.3};
  icl::PyRandom rng(5), replay(5);
  const double got = icl::kendall_random_original(a, 4, 3, rng);
  V u(12);
  for (double& v : u) v = replay.random();
  double sum = 0;
  int used = 0;
  for (int p = 0; p < 3; ++p) {
    V ca, cu;
    for (int e = 0; e < 4; ++e) {
      ca.push_back(a[size_t(e * 3 + p)]);
      cu.push_back(u[size_t(e * 3 + p)]);
    }
    const double t = naive_tau_b(ca, cu);  // column 2 is constant: NaN, skipped
    if (std::isnan(t)) continue;
    sum += t;
    ++used;
  }
  EXPECT_EQ(used, 2);
  EXPECT_NEAR(got, sum / used, 1e-15);
  icl::PyRandom r2(9), replay2(9);
  const V at = {3, 1, 2, 5};
  V noise(4);
  const double per_example = icl::kendall_random_per_example(at, r2);
  for (double& v : noise) v = replay2.random();
  EXPECT_NEAR(per_example, naive_tau_b(at, noise), 1e-15);
}

TEST(KendallPaper, SoftmaxTopkAndSegmentSums) {
  const V p = icl::softmax(V{0.0, std::log(3.0), std::log(4.0)});
  EXPECT_NEAR(p[0], 1.0 / 8, 1e-15);
  EXPECT_NEAR(p[1], 3.0 / 8, 1e-15);
  EXPECT_NEAR(p[2], 4.0 / 8, 1e-15);
  EXPECT_EQ(icl::topk_indices(V{0.2, 0.9, 0.2, 0.9, 0.1}, 3), (std::vector<int64_t>{1, 3, 0}));
  EXPECT_EQ(icl::topk_indices(V{0.2, 0.9}, 5), (std::vector<int64_t>{1, 0}));
  const std::vector<int64_t> lengths = {1, 2, 3};
  EXPECT_EQ(icl::segment_sums(V{1, 2, 3, 4, 5, 6}, lengths), (V{1, 5, 15}));
  const std::vector<int64_t> bad = {1, 2};
  EXPECT_THROW(icl::segment_sums(V{1, 2, 3, 4, 5, 6}, bad), Error);
}

TEST(KendallPaper, HandExample) {
  // ICL scores log(1..6) and FT scores log(6,1,2,3,4,5): the softmaxes are (1..6)/21 and
  // (6,1,2,3,4,5)/21. Tokens: 10 concordant pairs among positions 1-5, 5 discordant with
  // position 0 -> tau 5/15. Demonstrations of 1, 2, 3 tokens: ICL (1, 5, 15)/21, FT (6, 3, 12)/21
  // -> P=2 Q=1 -> 1/3. Top-2 tokens: ICL {5, 4}, FT {0, 5} -> 1/2. Top-2 examples: ICL {2, 1},
  // FT {2, 0} -> 1/2.
  V icl_s, ft_s;
  for (double v : {1, 2, 3, 4, 5, 6}) icl_s.push_back(std::log(v));
  for (double v : {6, 1, 2, 3, 4, 5}) ft_s.push_back(std::log(v));
  const std::vector<int64_t> lengths = {1, 2, 3};
  icl::PyRandom rng(3), replay(3);
  const icl::KendallPaperScores s = icl::kendall_paper(icl_s, ft_s, lengths, {.topk_tokens = 2, .topk_examples = 2}, rng);
  EXPECT_NEAR(s.token_tau, 1.0 / 3, 1e-15);
  EXPECT_NEAR(s.example_tau, 1.0 / 3, 1e-15);
  EXPECT_DOUBLE_EQ(s.token_recall, 0.5);
  EXPECT_DOUBLE_EQ(s.example_recall, 0.5);
  // The random parts, drawn in the documented order from the same seed.
  V noise(6), noise_ex(3);
  for (double& v : noise) v = replay.random();
  for (double& v : noise_ex) v = replay.random();
  V icl_p, icl_ex = {1.0 / 21, 5.0 / 21, 15.0 / 21};
  for (double v : {1, 2, 3, 4, 5, 6}) icl_p.push_back(v / 21);
  EXPECT_NEAR(s.token_random_tau, naive_tau_b(icl_p, noise), 1e-15);
  EXPECT_NEAR(s.example_random_tau, naive_tau_b(icl_ex, noise_ex), 1e-15);
  int hits = 0;
  for (int l = 0; l < 2; ++l) {
    const uint64_t r = replay.randbelow(6);
    hits += r == 0 || r == 5;
  }
  EXPECT_DOUBLE_EQ(s.token_random_recall, hits / 2.0);
  hits = 0;
  for (int l = 0; l < 2; ++l) {
    const uint64_t r = replay.randbelow(3);
    hits += r == 2 || r == 0;
  }
  EXPECT_DOUBLE_EQ(s.example_random_recall, hits / 2.0);
  EXPECT_THROW(icl::kendall_paper(icl_s, V{1, 2}, lengths, {}, rng), Error);
}

}  // namespace
}  // namespace attnlab::test
