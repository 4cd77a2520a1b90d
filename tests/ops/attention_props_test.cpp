// Property tests of the materialized attention (CPU, double): identities of METHODS §2.2, §3.2,
// §4.3–§4.6 that hold exactly, KV-cache decoding, fully masked rows, and captures recomputed
// independently from the returned maps.
#include <cmath>

#include "tests/ops/attention_test_util.h"

namespace attnlab::test {
namespace {

AttnProblem base_problem(AttnNorm norm, uint64_t seed, bool differential = false) {
  AttnProblem p;
  p.spec.Hq = 4, p.spec.Hkv = 2, p.spec.d = 5, p.spec.dv = 3;
  p.spec.norm = norm;
  p.spec.differential = differential;
  p.nlambda = differential ? 4 : 1;
  p.B = 2, p.T = 6, p.S = 8, p.S_cap = 10;
  p.key_len = {8, 5};
  p.randomize(seed, 1.3);
  return p;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::isfinite(x) ? std::fabs(x) : INFINITY);
  return m;
}

// METHODS §4.3: a per-row additive controller leaves every normalising map unchanged and gets an
// exactly-zero gradient (softmax by shift invariance; linear and ramp shift x and min alike).
TEST(AttentionProps, AdditiveControllerIsANoOpWithZeroGradient) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    AttnProblem with = base_problem(norm, 11);
    with.add = true;
    with.sadd = rand_uniform(with.nrow(), -3, 3, 12);
    AttnProblem without = with;
    without.add = false;
    AttnOutputs a = with.run(cpu_ctx(), DType::f64, true), b = without.run(cpu_ctx(), DType::f64, true);
    EXPECT_LT(max_abs_diff(a.p, b.p), 1e-14) << attn_norm_name(norm);
    EXPECT_LT(rel_err(a.dq, b.dq), 1e-12) << attn_norm_name(norm);
    EXPECT_LE(max_abs(a.dadd), 1e-12) << attn_norm_name(norm);
    EXPECT_GT(max_abs(a.dq), 1e-3);  // the gradient that does flow is not trivially zero
  }
}

// METHODS §4.5: ramp(0) is softmax, ramp(1) is linear (forward and backward).
TEST(AttentionProps, RampEndpointsAreSoftmaxAndLinear) {
  for (double alpha : {0.0, 1.0}) {
    AttnProblem ramp = base_problem(AttnNorm::ramp, 21);
    ramp.spec.ramp_alpha = alpha;
    ramp.mul = true;
    ramp.smul = rand_uniform(ramp.nrow(), 0.5, 1.5, 22);
    AttnProblem ref = ramp;
    ref.spec.norm = alpha == 0 ? AttnNorm::softmax : AttnNorm::linear;
    AttnOutputs a = ramp.run(cpu_ctx(), DType::f64, true), b = ref.run(cpu_ctx(), DType::f64, true);
    for (auto [name, x, y] : {std::tuple{"o", &a.o, &b.o}, {"p", &a.p, &b.p}, {"dq", &a.dq, &b.dq},
                              {"dk", &a.dk, &b.dk}, {"dv", &a.dv, &b.dv}, {"dtau", &a.dmul, &b.dmul}})
      EXPECT_LT(rel_err(*x, *y), 1e-12) << "alpha=" << alpha << " " << name;
  }
}

// Differential with λ = 0 is standard attention on (Q1, K1); dλ = −Σ dP ⊙ A2 recomputed from
// dP = dO·Vᵀ by hand.
TEST(AttentionProps, DifferentialWithZeroLambdaIsStandard) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    AttnProblem diff = base_problem(norm, 31, true);
    diff.lam.assign(4, 0.0);
    AttnProblem std_ = diff;
    std_.spec.differential = false;
    AttnOutputs a = diff.run(cpu_ctx(), DType::f64, true), b = std_.run(cpu_ctx(), DType::f64, true);
    EXPECT_LT(rel_err(a.o, b.o), 1e-13) << attn_norm_name(norm);
    EXPECT_LT(rel_err(a.dq, b.dq), 1e-13) << attn_norm_name(norm);
    EXPECT_LT(rel_err(a.dk, b.dk), 1e-13) << attn_norm_name(norm);
    EXPECT_LT(rel_err(a.dv, b.dv), 1e-13) << attn_norm_name(norm);
    EXPECT_EQ(max_abs(a.dq2), 0.0);
    EXPECT_EQ(max_abs(a.dk2), 0.0);
    const auto& s = diff.spec;
    std::vector<double> dlam(4, 0.0);
    for (int64_t b_ = 0; b_ < diff.B; ++b_)
      for (int64_t h = 0; h < s.Hq; ++h)
        for (int64_t t = 0; t < diff.T; ++t)
          for (int64_t j = 0; j < diff.S; ++j) {
            double dp = 0;
            for (int64_t e = 0; e < s.dv; ++e)
              dp += diff.dout[size_t(((b_ * s.Hq + h) * diff.T + t) * s.dv + e)] *
                    diff.v[size_t(((b_ * s.Hkv + h / 2) * diff.S_cap + j) * s.dv + e)];
            dlam[size_t(h)] -= dp * a.p2[size_t(((b_ * s.Hq + h) * diff.T + t) * diff.S + j)];
          }
    EXPECT_LT(rel_err(a.dlambda, dlam), 1e-12) << attn_norm_name(norm);
  }
}

// METHODS §2.2: the last-position output of causal LinearAttn over [X'; X] equals
// W_ZSL q + ΔW_ICL q, and a linear layer updated by ΔW_FT = Σ e_i x'_iᵀ is LinearAttn with keys
// x'_i and values e_i.
TEST(AttentionProps, RelaxedLinearAttentionDualForm) {
  const int64_t D = 6, dh = 4, N = 5, M = 3, L = N + M;
  auto WQ = rand_normal(size_t(dh * D), 0.5, 1), WK = rand_normal(size_t(dh * D), 0.5, 2),
       WV = rand_normal(size_t(dh * D), 0.5, 3);
  auto X = rand_normal(size_t(L * D), 1.0, 4);  // rows 0..N−1 demonstrations X', N..L−1 query text X
  auto proj = [&](const std::vector<double>& W, int64_t i) {
    std::vector<double> y(static_cast<size_t>(dh), 0.0);
    for (int64_t r = 0; r < dh; ++r)
      for (int64_t c = 0; c < D; ++c) y[size_t(r)] += W[size_t(r * D + c)] * X[size_t(i * D + c)];
    return y;
  };
  AttnProblem pr;
  pr.spec.Hq = pr.spec.Hkv = 1, pr.spec.d = pr.spec.dv = dh, pr.spec.scale = 1.0;
  pr.spec.norm = AttnNorm::relaxed_linear;
  pr.B = 1, pr.T = pr.S = pr.S_cap = L;
  pr.q.resize(size_t(L * dh)), pr.k.resize(size_t(L * dh)), pr.v.resize(size_t(L * dh));
  for (int64_t i = 0; i < L; ++i) {
    auto q = proj(WQ, i), k = proj(WK, i), v = proj(WV, i);
    std::copy(q.begin(), q.end(), pr.q.begin() + i * dh);
    std::copy(k.begin(), k.end(), pr.k.begin() + i * dh);
    std::copy(v.begin(), v.end(), pr.v.begin() + i * dh);
  }
  AttnOutputs out = pr.run(cpu_ctx(), DType::f64, false);
  std::vector<double> Wzsl(size_t(dh * dh), 0.0), dWicl(size_t(dh * dh), 0.0);
  for (int64_t i = 0; i < L; ++i) {
    auto k = proj(WK, i), v = proj(WV, i);
    auto& W = i < N ? dWicl : Wzsl;
    for (int64_t r = 0; r < dh; ++r)
      for (int64_t c = 0; c < dh; ++c) W[size_t(r * dh + c)] += v[size_t(r)] * k[size_t(c)];
  }
  auto q = proj(WQ, L - 1);
  std::vector<double> F(size_t(dh), 0.0), got(out.o.end() - dh, out.o.end());
  for (int64_t r = 0; r < dh; ++r)
    for (int64_t c = 0; c < dh; ++c) F[size_t(r)] += (Wzsl[size_t(r * dh + c)] + dWicl[size_t(r * dh + c)]) * q[size_t(c)];
  EXPECT_LT(max_abs_diff(got, F), 1e-10);
  EXPECT_GT(max_abs(F), 0.1);

  // Gradient-descent side: keys x'_i (width D), values e_i, one query x.
  const int64_t dout = 3;
  auto E = rand_normal(size_t(N * dout), 1.0, 5), W0 = rand_normal(size_t(dout * D), 1.0, 6);
  std::vector<double> x(X.end() - D, X.end());
  AttnProblem ft;
  ft.spec.Hq = ft.spec.Hkv = 1, ft.spec.d = D, ft.spec.dv = dout, ft.spec.scale = 1.0;
  ft.spec.norm = AttnNorm::relaxed_linear, ft.spec.causal = false;
  ft.B = 1, ft.T = 1, ft.S = ft.S_cap = N;
  ft.q = x, ft.k.assign(X.begin(), X.begin() + N * D), ft.v = E;
  AttnOutputs lin = ft.run(cpu_ctx(), DType::f64, false);
  std::vector<double> updated(size_t(dout), 0.0), base(size_t(dout), 0.0);
  for (int64_t r = 0; r < dout; ++r)
    for (int64_t c = 0; c < D; ++c) {
      double dW = 0;
      for (int64_t i = 0; i < N; ++i) dW += E[size_t(i * dout + r)] * X[size_t(i * D + c)];
      updated[size_t(r)] += (W0[size_t(r * D + c)] + dW) * x[size_t(c)];
      base[size_t(r)] += W0[size_t(r * D + c)] * x[size_t(c)];
    }
  for (int64_t r = 0; r < dout; ++r) EXPECT_NEAR(base[size_t(r)] + lin.o[size_t(r)], updated[size_t(r)], 1e-10);
}

// One decode step with a KV cache (T = 1, offset S − 1, cache capacity > S) reproduces the last
// row of the full causal pass.
TEST(AttentionProps, KvCacheDecodeMatchesLastRowOfFullPass) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    for (bool diff : {false, true}) {
      AttnProblem full = base_problem(norm, 41, diff);
      full.key_len.clear();
      full.S = full.T = 6;
      full.randomize(42, 1.3);
      AttnProblem step = full;
      step.T = 1;
      const auto& s = full.spec;
      auto last_rows = [&](const std::vector<double>& x, int64_t width) {
        std::vector<double> r;
        for (int64_t bh = 0; bh < full.B * s.Hq; ++bh)
          r.insert(r.end(), x.begin() + ((bh * full.T) + full.T - 1) * width, x.begin() + (bh * full.T + full.T) * width);
        return r;
      };
      step.q = last_rows(full.q, s.d);
      if (diff) step.q2 = last_rows(full.q2, s.d);
      step.dout = last_rows(full.dout, s.dv);
      AttnOutputs f = full.run(cpu_ctx(), DType::f64, false), d = step.run(cpu_ctx(), DType::f64, false);
      EXPECT_LT(rel_err(d.o, last_rows(f.o, s.dv)), 1e-13) << attn_norm_name(norm) << diff;
      EXPECT_LT(rel_err(d.p, last_rows(f.p, full.S)), 1e-13) << attn_norm_name(norm) << diff;
    }
  }
}

// A sequence with key length 0 has fully masked rows: zero probabilities, zero output, zero
// gradients, documented zero statistics, and no NaN anywhere.
TEST(AttentionProps, FullyMaskedRowsGiveZerosAndNoNaN) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear}) {
    for (bool diff : {false, true}) {
      AttnProblem pr = base_problem(norm, 51, diff);
      pr.key_len = {0, 3};
      pr.add = pr.mul = true;
      pr.randomize(52, 1.3);
      AttnCaptureReq cap;
      cap.rows = {0, 5};
      cap.spans = {0, 2, 1, 8};
      cap.variance = true;
      cap.entropy = cap.kl = !diff && norm != AttnNorm::relaxed_linear;
      AttnOutputs r = pr.run(cpu_ctx(), DType::f64, true, &cap);
      const size_t half_rows = pr.nrow() / 2;  // batch 0 is fully masked
      const std::vector<std::pair<const char*, const std::vector<double>*>> all = {
          {"o", &r.o}, {"p", &r.p}, {"p2", &r.p2}, {"lse", &r.lse}, {"rsum", &r.rsum},
          {"cap_probs", &r.cap_probs}, {"entropy", &r.entropy}, {"kl", &r.kl}, {"variance", &r.variance},
          {"span_mass", &r.span_mass}, {"dq", &r.dq}, {"dk", &r.dk}, {"dv", &r.dv}, {"dq2", &r.dq2},
          {"dk2", &r.dk2}, {"dlambda", &r.dlambda}, {"dadd", &r.dadd}, {"dmul", &r.dmul}};
      for (auto [name, v] : all) {
        EXPECT_LT(max_abs(*v), INFINITY) << attn_norm_name(norm) << diff << name;  // finite everywhere
        if (v->empty() || v == &r.dlambda) continue;
        const size_t first_half = v->size() / 2;  // every tensor's leading dim is B = 2
        EXPECT_EQ(max_abs(std::vector<double>(v->begin(), v->begin() + first_half)), 0.0)
            << attn_norm_name(norm) << " diff=" << diff << " " << name;
      }
      if (!r.rmin.empty())
        for (size_t i = 0; i < half_rows; ++i) EXPECT_EQ(r.rmin[i], -1.0);
      EXPECT_GT(max_abs(std::vector<double>(r.o.begin() + r.o.size() / 2, r.o.end())), 1e-3);
    }
  }
}

}  // namespace
}  // namespace attnlab::test
