// The dual form of relaxed linear attention (METHODS §2.2): the causal linear-attention output at
// the last position equals W_ZSL q + ΔW_ICL q, on random projections with odd/prime shapes and GQA.
// The attention side is recomputed here with a plain per-head loop (keys and values of every token
// of [X'; X]), the dual side from W_ZSL and ΔW_ICL built here as explicit matrices.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "studies/icl/dual_form.h"

namespace attnlab::test {
namespace {

std::vector<double> random_vec(std::mt19937_64& g, size_t n) {
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = d(g);
  return v;
}

icl::DualFormInputs random_inputs(uint64_t seed, int64_t D, int64_t Hq, int64_t Hkv, int64_t d, int64_t Nd, int64_t M) {
  std::mt19937_64 g(seed);
  icl::DualFormInputs in;
  in.D = D, in.Hq = Hq, in.Hkv = Hkv, in.d = d;
  in.Wq = random_vec(g, size_t(Hq * d * D));
  in.Wk = random_vec(g, size_t(Hkv * d * D));
  in.Wv = random_vec(g, size_t(Hkv * d * D));
  in.Xd = random_vec(g, size_t(Nd * D));
  in.Xq = random_vec(g, size_t(M * D));
  return in;
}

// Row `r` of W [rows, D] times x.
double row_dot(const std::vector<double>& W, int64_t r, int64_t D, const double* x) {
  double s = 0;
  for (int64_t c = 0; c < D; ++c) s += W[size_t(r * D + c)] * x[c];
  return s;
}

TEST(DualForm, LinearAttentionEqualsZeroShotPlusIclUpdate) {
  struct Shape { int64_t D, Hq, Hkv, d, Nd, M; };
  for (const Shape s : {Shape{7, 3, 3, 5, 11, 3}, Shape{13, 6, 2, 3, 17, 5}, Shape{5, 4, 1, 7, 1, 1}}) {
    const icl::DualFormInputs in = random_inputs(uint64_t(s.D * 31 + s.Nd), s.D, s.Hq, s.Hkv, s.d, s.Nd, s.M);
    const icl::DualFormResult r = icl::dual_form_check(in);
    const int64_t G = s.Hq / s.Hkv;
    const double* xq = in.Xq.data() + (s.M - 1) * s.D;
    // Attention side, independently: o_h = Σ_j (q_h · k_j) v_j over the Nd + M tokens.
    std::vector<double> att(size_t(s.Hq * s.d), 0.0), zsl_only(size_t(s.Hq * s.d), 0.0);
    for (int64_t j = 0; j < s.Nd + s.M; ++j) {
      const double* x = j < s.Nd ? in.Xd.data() + j * s.D : in.Xq.data() + (j - s.Nd) * s.D;
      for (int64_t h = 0; h < s.Hq; ++h) {
        const int64_t g = h / G;
        double a = 0;
        for (int64_t i = 0; i < s.d; ++i) a += row_dot(in.Wq, h * s.d + i, s.D, xq) * row_dot(in.Wk, g * s.d + i, s.D, x);
        for (int64_t i = 0; i < s.d; ++i) {
          att[size_t(h * s.d + i)] += a * row_dot(in.Wv, g * s.d + i, s.D, x);
          if (j >= s.Nd) zsl_only[size_t(h * s.d + i)] += a * row_dot(in.Wv, g * s.d + i, s.D, x);
        }
      }
    }
    double scale = 0, icl_part = 0;
    for (size_t i = 0; i < att.size(); ++i) {
      scale = std::max(scale, std::abs(att[i]));
      icl_part = std::max(icl_part, std::abs(att[i] - zsl_only[i]));
      EXPECT_NEAR(r.attention[i], att[i], 1e-10 * scale + 1e-12);
      EXPECT_NEAR(r.dual[i], att[i], 1e-10 * scale + 1e-12) << "D " << s.D << " element " << i;
    }
    EXPECT_LE(r.max_abs_diff, 1e-10 * r.max_abs);
    // The demonstrations matter: ΔW_ICL q is not negligible, so the identity is not 0 = 0.
    EXPECT_GT(icl_part, 1e-3 * scale);
  }
}

TEST(DualForm, DropsWhenTheDualLeavesOutADemonstration) {
  // The identity's two sides differ as soon as the dual form misses one demonstration token: run
  // the check with X' cut by one token and compare with the full attention output.
  const icl::DualFormInputs in = random_inputs(7, 11, 4, 2, 3, 9, 2);
  icl::DualFormInputs cut = in;
  cut.Xd.resize(in.Xd.size() - size_t(in.D));
  const icl::DualFormResult full = icl::dual_form_check(in), less = icl::dual_form_check(cut);
  double diff = 0;
  for (size_t i = 0; i < full.attention.size(); ++i) diff = std::max(diff, std::abs(full.attention[i] - less.dual[i]));
  EXPECT_GT(diff, 1e-6 * full.max_abs);
}

}  // namespace
}  // namespace attnlab::test
