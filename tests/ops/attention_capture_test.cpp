// Captures of the materialized attention (CPU, double): every capture is recomputed here from the
// returned maps and from scores computed by hand, with METHODS §4.6's conventions.
#include <cmath>

#include "tests/ops/attention_test_util.h"

namespace attnlab::test {
namespace {

struct CaptureCase {
  AttnNorm norm;
  bool differential;
  bool controllers;
};

class AttentionCapture : public ::testing::TestWithParam<CaptureCase> {};

TEST_P(AttentionCapture, MatchesValuesRecomputedFromTheReturnedMaps) {
  const CaptureCase cc = GetParam();
  AttnProblem pr;
  pr.spec.Hq = 6, pr.spec.Hkv = 2, pr.spec.d = 4, pr.spec.dv = 3;
  pr.spec.norm = cc.norm, pr.spec.ramp_alpha = 0.4, pr.spec.differential = cc.differential;
  pr.nlambda = cc.differential ? 6 : 1;
  pr.B = 2, pr.T = 5, pr.S = 9, pr.S_cap = 11;
  pr.key_len = {9, 6};
  pr.add = pr.mul = cc.controllers;
  pr.randomize(61, 1.6);
  const bool dist = !cc.differential && cc.norm != AttnNorm::relaxed_linear;
  AttnCaptureReq cap;
  cap.rows = {4, 0, 2, 17};  // 17 is out of range: its slot stays untouched by rows
  cap.spans = {0, 3, 2, 7, 5, 40};
  cap.variance = true;
  cap.entropy = cap.kl = dist;
  AttnOutputs r = pr.run(cpu_ctx(), DType::f64, false, &cap);

  const auto& s = pr.spec;
  const int64_t G = s.Hq / s.Hkv, S = pr.S, nr = int64_t(cap.rows.size()), ns = int64_t(cap.spans.size() / 2);
  const double scale = s.score_scale();
  auto raw_score = [&](const std::vector<double>& q, const std::vector<double>& k, int64_t b, int64_t h,
                       int64_t t, int64_t j) {
    double dot = 0;
    for (int64_t e = 0; e < s.d; ++e)
      dot += q[size_t(((b * s.Hq + h) * pr.T + t) * s.d + e)] * k[size_t(((b * s.Hkv + h / G) * pr.S_cap + j) * s.d + e)];
    return dot * scale;
  };
  double checked_stats = 0;
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h)
      for (int64_t t = 0; t < pr.T; ++t) {
        const size_t row = size_t((b * s.Hq + h) * pr.T + t);
        const int64_t n = pr.visible(b, t);
        const double tau = pr.mul ? pr.smul[row] : 1.0, add = pr.add ? pr.sadd[row] : 0.0;
        const double lam = cc.differential ? pr.lam[size_t(h)] : 0.0;
        std::vector<double> P(static_cast<size_t>(S));
        for (int64_t j = 0; j < S; ++j)
          P[size_t(j)] = r.p[row * S + j] - (cc.differential ? lam * r.p2[row * S + j] : 0.0);
        // Captured rows: scores for every key before the mask, P as returned.
        for (int64_t slot = 0; slot < nr; ++slot) {
          if (cap.rows[size_t(slot)] != t) continue;
          const size_t off = size_t(((b * s.Hq + h) * nr + slot) * S);
          for (int64_t j = 0; j < S; ++j) {
            EXPECT_NEAR(r.cap_scores[off + j], raw_score(pr.q, pr.k, b, h, t, j) * tau + add, 1e-12);
            if (cc.differential)
              EXPECT_NEAR(r.cap_scores2[off + j], raw_score(pr.q2, pr.k2, b, h, t, j) * tau + add, 1e-12);
            EXPECT_NEAR(r.cap_probs[off + j], P[size_t(j)], 1e-14);
          }
        }
        double mean = 0;
        for (int64_t j = 0; j < n; ++j) mean += P[size_t(j)] / double(n);
        double var = 0;
        for (int64_t j = 0; j < n; ++j) var += (P[size_t(j)] - mean) * (P[size_t(j)] - mean);
        EXPECT_NEAR(r.variance[row], n > 1 ? var / double(n - 1) : 0.0, 1e-13) << row;
        for (int64_t k = 0; k < ns; ++k) {
          double m = 0;
          for (int64_t j = cap.spans[size_t(2 * k)]; j < std::min<int64_t>(cap.spans[size_t(2 * k + 1)], n); ++j)
            m += P[size_t(j)];
          EXPECT_NEAR(r.span_mass[row * size_t(ns) + size_t(k)], m, 1e-13);
        }
        if (!dist) continue;
        double ent = 0, kl = 0, mx = -INFINITY, se = 0;
        for (int64_t j = 0; j < n; ++j) mx = std::max(mx, raw_score(pr.q, pr.k, b, h, t, j));
        for (int64_t j = 0; j < n; ++j) se += std::exp(raw_score(pr.q, pr.k, b, h, t, j) - mx);
        for (int64_t j = 0; j < n; ++j) {
          const double p = P[size_t(j)], po = std::exp(raw_score(pr.q, pr.k, b, h, t, j) - mx) / se;
          if (p > 0) ent -= p * std::log(p);
          if (po > 0) kl += po * (std::log(po) - std::log(p));
        }
        EXPECT_NEAR(r.entropy[row], ent, 1e-12) << row;
        EXPECT_NEAR(r.kl[row], kl, 1e-12) << row;
        checked_stats += std::fabs(ent) + std::fabs(kl);
      }
  // The statistics are not trivially zero: linear/ramp or controllers move P away from softmax.
  if (dist && (cc.controllers || cc.norm != AttnNorm::softmax)) EXPECT_GT(checked_stats, 0.1);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AttentionCapture,
    ::testing::Values(CaptureCase{AttnNorm::softmax, false, false}, CaptureCase{AttnNorm::softmax, false, true},
                      CaptureCase{AttnNorm::linear, false, false}, CaptureCase{AttnNorm::ramp, false, true},
                      CaptureCase{AttnNorm::relaxed_linear, false, true}, CaptureCase{AttnNorm::softmax, true, true},
                      CaptureCase{AttnNorm::ramp, true, false}),
    [](const auto& i) {
      return std::string(attn_norm_name(i.param.norm)) + (i.param.differential ? "_diff" : "") +
             (i.param.controllers ? "_controllers" : "");
    });

}  // namespace
}  // namespace attnlab::test
