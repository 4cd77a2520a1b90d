// Rec2FTP / Rec2FT, SimAOU and SimAM on hand-made vectors (METHODS §2.7-2.9). Values marked
// "python" were computed with plain-Python lists (math.sqrt, the formulas of metrics.h).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "studies/icl/metrics.h"

namespace attnlab::test {
namespace {
using F = std::vector<float>;
using D = std::vector<double>;

TEST(IclCosine, PyTorchSemantics) {
  // [1,2,2]·[2,0,1] = 4, norms 3 and sqrt(5).
  EXPECT_NEAR(icl::cosine_similarity(D{1, 2, 2}, D{2, 0, 1}), 4 / (3 * std::sqrt(5.0)), 1e-15);
  EXPECT_NEAR(icl::cosine_similarity(F{1, 2, 2}, F{2, 0, 1}), 4 / (3 * std::sqrt(5.0)), 1e-15);
  // A zero vector: the norm is clamped to 1e-8, so the cosine is 0, not NaN.
  EXPECT_EQ(icl::cosine_similarity(D{0, 0}, D{1, 1}), 0.0);
  EXPECT_THROW(icl::cosine_similarity(D{1}, D{1, 2}), Error);
}

TEST(Rec2Ftp, PaperAndOriginalDenominators) {
  // Z={1,2,3}, I={2,4,5,6}, F={1,4,5,7,8}: F∖Z={4,5,7,8}, I∖Z={4,5,6}, shared {4,5}, F∖I={1,7,8}.
  const std::vector<int64_t> Z = {3, 1, 2}, I = {2, 4, 5, 6, 6}, Fc = {1, 4, 5, 7, 8};
  const icl::Rec2Ft r = icl::rec2ft(Z, I, Fc);
  EXPECT_EQ(r.ft_gain, 4);
  EXPECT_EQ(r.icl_gain, 3);
  EXPECT_EQ(r.shared_gain, 2);
  EXPECT_EQ(r.ft_not_icl, 3);
  EXPECT_DOUBLE_EQ(r.paper, 0.5);
  EXPECT_DOUBLE_EQ(r.original, 2 / (3 + 1e-5));
  // F ⊆ Z: the paper's ratio is undefined.
  const std::vector<int64_t> F2 = {1, 2};
  const icl::Rec2Ft e = icl::rec2ft(Z, I, F2);
  EXPECT_TRUE(std::isnan(e.paper));
  EXPECT_EQ(e.original, 0.0);
}

TEST(LayerMeansTest, MeansPerLayerAndFromAFirstLayer) {
  icl::LayerMeans m(3);
  m.add(0, 1.0);
  m.add(1, 2.0);
  m.add(1, 4.0);
  m.add(2, -1.0);
  EXPECT_EQ(m.per_layer(), (D{1.0, 3.0, -1.0}));
  EXPECT_DOUBLE_EQ(m.mean(), 1.0);
  EXPECT_DOUBLE_EQ(m.mean(1), 1.0);
  EXPECT_EQ(m.count(1), 2);
  EXPECT_THROW(m.add(3, 0.0), Error);
  icl::LayerMeans empty(2);
  empty.add(0, 5.0);
  EXPECT_TRUE(std::isnan(empty.per_layer()[1]));
}

TEST(SimAouTest, OneExampleByHand) {
  // zsl [1,0], icl [0,1], ft [1,1], eps 0: Δ_ICL = [-1,1], Δ_FT = [1/√2 − 1, 1/√2]; the angle is
  // π/8, cos = 0.9238795325112867.
  EXPECT_NEAR(icl::simaou_cos(F{1, 0}, F{0, 1}, F{1, 1}, 0.0), std::cos(M_PI / 8), 1e-15);
  // With the ORIGINAL eps 1e-5 (python): 0.9238781795268107.
  EXPECT_NEAR(icl::simaou_cos(F{1, 0}, F{0, 1}, F{1, 1}, 1e-5), 0.9238781795268107, 1e-15);
  // 3-d (python): eps 1e-5 -> 0.9283340177323385, eps 1e-20 -> 0.9283338373278502.
  EXPECT_NEAR(icl::simaou_cos(F{3, 4, 0}, F{0, 4, 3}, F{-3, 4, 12}, 1e-5), 0.9283340177323385, 1e-14);
  EXPECT_NEAR(icl::simaou_cos(F{3, 4, 0}, F{0, 4, 3}, F{-3, 4, 12}, 1e-20), 0.9283338373278502, 1e-14);
  // Random baseline against a given r: Δ_ICL = [-1, 1], r = [0, 2] -> 1/√2.
  EXPECT_NEAR(icl::simaou_random_cos(F{1, 0}, F{0, 1}, D{0, 2}, 0.0), 1 / std::sqrt(2.0), 1e-15);
}

TEST(SimAouTest, LayerMeansLeaveTheEmbeddingLayerOutOfTheMean) {
  // Layer 0 (embedding output): zsl == icl, so Δ_ICL = 0 and both cosines are 0.
  // Layer 1: the π/8 example twice -> cos(π/8). Layer 2: ft == icl -> 1, and ft == zsl -> 0.
  auto run = [](const icl::SimAouOptions& o) {
    icl::SimAou s(3, o);
    for (int e = 0; e < 2; ++e) {
      s.add(0, F{2, 1}, F{2, 1}, F{2, 1});
      s.add(1, F{1, 0}, F{0, 1}, F{1, 1});
    }
    s.add(2, F{1, 0, 0}, F{0, 1, 0}, F{0, 1, 0});
    s.add(2, F{1, 0, 0}, F{0, 1, 0}, F{1, 0, 0});
    return s.result();
  };
  icl::SimAouOptions o;
  o.norm_eps = 0.0;
  const icl::SimAouResult hidden = run(o);
  ASSERT_EQ(hidden.per_layer.size(), 3u);
  EXPECT_EQ(hidden.per_layer[0], 0.0);
  EXPECT_NEAR(hidden.per_layer[1], std::cos(M_PI / 8), 1e-15);
  EXPECT_NEAR(hidden.per_layer[2], 0.5, 1e-15);
  EXPECT_EQ(hidden.first_layer, 1);
  EXPECT_NEAR(hidden.mean, (std::cos(M_PI / 8) + 0.5) / 2, 1e-15);
  EXPECT_EQ(hidden.random_per_layer[0], 0.0);
  o.include_embedding_layer = true;
  const icl::SimAouResult with_embedding = run(o);
  EXPECT_EQ(with_embedding.first_layer, 0);
  EXPECT_NEAR(with_embedding.mean, (std::cos(M_PI / 8) + 0.5) / 3, 1e-15);
  o.include_embedding_layer = false;
  o.source = icl::SimAouSource::attn_out;  // layer 0 is a real attention layer there
  EXPECT_EQ(run(o).first_layer, 0);
}

TEST(SimAouTest, RandomBaselineDrawsFromTheSeededGenerator) {
  for (icl::RandomDraw draw : {icl::RandomDraw::normal, icl::RandomDraw::uniform}) {
    icl::SimAouOptions o{.random = draw, .seed = 17};
    icl::SimAou s(2, o);
    const F z1 = {0.5f, -1.0f, 2.0f}, i1 = {1.5f, 0.25f, -0.75f}, f1 = {0.0f, 1.0f, 1.0f};
    const F z2 = {1.0f, 1.0f, 1.0f, 1.0f, 3.0f}, i2 = {2.0f, -1.0f, 0.5f, 0.0f, 1.0f}, f2 = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
    s.add(0, z1, i1, f1);
    s.add(1, z2, i2, f2);
    s.add(1, z1, i1, f1);  // a shorter vector in the same layer is fine for the metric
    icl::PyRandom replay(17);
    auto draw_r = [&](size_t n) {
      D r(n);
      for (double& v : r) v = draw == icl::RandomDraw::normal ? replay.gauss() : replay.random();
      return r;
    };
    const D r1 = draw_r(3), r2 = draw_r(5), r3 = draw_r(3);
    const icl::SimAouResult res = s.result();
    EXPECT_NEAR(res.random_per_layer[0], icl::simaou_random_cos(z1, i1, r1, 1e-5), 1e-15);
    EXPECT_NEAR(res.random_per_layer[1],
                (icl::simaou_random_cos(z2, i2, r2, 1e-5) + icl::simaou_random_cos(z1, i1, r3, 1e-5)) / 2, 1e-15);
    if (draw == icl::RandomDraw::uniform) {
      for (double v : r1) EXPECT_TRUE(v >= 0 && v < 1);
    }
    EXPECT_THROW(s.add(0, z1, i2, f1), Error);
  }
}

TEST(SimAmTest, HeadMeansOfTheQueryPart) {
  // 2 heads, Lq = 2, Lc = 4. z = [[1,0],[0,1]], f = [[1,1],[2,0]], c = [[9,9,1,0],[9,9,1,1]].
  // ORIGINAL alignment: c[:, 2:4] = [[1,0],[1,1]].
  //   FT:  cos([1,1],[1,0]) = 1/√2, cos([2,0],[1,1]) = 1/√2 -> 1/√2.
  //   ZSL: cos([1,0],[1,0]) = 1,    cos([0,1],[1,1]) = 1/√2 -> (1 + 1/√2)/2.
  const F z = {1, 0, 0, 1}, f = {1, 1, 2, 0}, c = {9, 9, 1, 0, 9, 9, 1, 1};
  const double s2 = 1 / std::sqrt(2.0);
  icl::SimAm m(2);
  EXPECT_EQ(icl::original_query_start(4, 2), 2);
  m.add(0, 2, z, c, f, icl::original_query_start(4, 2));
  // PAPER alignment from the context length 1: c[:, 1:3] = [[9,1],[9,1]].
  //   FT:  cos([1,1],[9,1]) = 10/(√2·√82), cos([2,0],[9,1]) = 9/√82;
  //   ZSL: cos([1,0],[9,1]) = 9/√82,       cos([0,1],[9,1]) = 1/√82.
  m.add(1, 2, z, c, f, 1);
  const icl::SimAmResult r = m.result();
  EXPECT_NEAR(r.per_layer[0], s2, 1e-15);
  EXPECT_NEAR(r.zsl_per_layer[0], (1 + s2) / 2, 1e-15);
  const double q = std::sqrt(82.0);
  EXPECT_NEAR(r.per_layer[1], (10 / (std::sqrt(2.0) * q) + 9 / q) / 2, 1e-15);
  EXPECT_NEAR(r.zsl_per_layer[1], (9 / q + 1 / q) / 2, 1e-15);
  EXPECT_NEAR(r.mean, (r.per_layer[0] + r.per_layer[1]) / 2, 1e-15);
  EXPECT_NEAR(r.zsl_mean, (r.zsl_per_layer[0] + r.zsl_per_layer[1]) / 2, 1e-15);
  // A query part that runs past the ICL row: the query tokenized differently after the context.
  try {
    m.add(0, 2, z, c, f, 3);
    ADD_FAILURE() << "misaligned query part must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizes differently"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnlab::test
