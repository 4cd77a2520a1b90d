#include "core/ops/lm_entropy.h"

#include <algorithm>
#include <cmath>

#include "support/testing.h"

namespace attnlab::test {
namespace {

struct EntCase {
  int64_t T, D, V, Vp;
  std::vector<double> x, emb;  // [T, D], [Vp, D]
};

// Logits of a spread (std ≈ 1.2·scale) that puts most probabilities far below ε = 1e−9, so the ε
// inside the log matters. Padding rows hold large values: reading them would dominate the softmax.
EntCase make_case(int64_t T, int64_t D, int64_t V, int64_t Vp, double scale, uint64_t seed) {
  EntCase c{T, D, V, Vp, rand_uniform(size_t(T * D), -1, 1, seed), rand_uniform(size_t(Vp * D), -scale, scale, seed + 1)};
  for (int64_t v = V; v < Vp; ++v)
    for (int64_t d = 0; d < D; ++d) c.emb[size_t(v * D + d)] = 50.0 * (d % 2 ? 1 : 0.5);
  return c;
}

struct Naive {
  std::vector<double> exact, plain, lse;
};
// The full-logits computation in double, straight from the definition.
Naive naive(const EntCase& c) {
  Naive n;
  for (int64_t t = 0; t < c.T; ++t) {
    std::vector<double> z(size_t(c.V));
    for (int64_t v = 0; v < c.V; ++v) {
      double s = 0;
      for (int64_t d = 0; d < c.D; ++d) s += c.x[size_t(t * c.D + d)] * c.emb[size_t(v * c.D + d)];
      z[size_t(v)] = s;
    }
    const double m = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double v : z) sum += std::exp(v - m);
    double e = 0, h = 0;
    for (double v : z) {
      const double p = std::exp(v - m) / sum;
      e -= p * std::log(p + 1e-9);
      if (p > 0) h -= p * std::log(p);
    }
    n.exact.push_back(e);
    n.plain.push_back(h);
    n.lse.push_back(m + std::log(sum));
  }
  return n;
}

struct Result {
  std::vector<double> entropy, state;
};
Result run(const EntCase& c, DType dt, int64_t tile, LmEntropyMode mode, int64_t vocab) {
  Ctx& ctx = cpu_ctx();
  const DType acc = acc_dtype(dt);
  Buffer x = make_tensor(Device::cpu, dt, {c.T, c.D}, c.x, "x"), emb = make_tensor(Device::cpu, dt, {c.Vp, c.D}, c.emb, "emb");
  Buffer e = make_poisoned(Device::cpu, acc, {c.T}, "entropy"), scratch = make_poisoned(Device::cpu, acc, {c.T, tile}, "scratch");
  Buffer state = make_poisoned(Device::cpu, acc, {c.T, 3}, "state");
  lm_entropy_forward(ctx, {.x = x.t(), .emb = emb.t(), .entropy = e.t(), .scratch = scratch.t(), .state = state.t(),
                           .vocab = vocab, .mode = mode});
  return {to_host_f64(ctx, e.t()), to_host_f64(ctx, state.t())};
}

}  // namespace

TEST(LmEntropy, ExactMatchesNaiveForEveryTileSize) {
  EntCase c = make_case(7, 13, 97, 101, 8.0, 3);
  // One more row with x = 0: uniform logits, so e = −log(1/V + ε) exactly (an analytic check).
  c.T += 1;
  c.x.insert(c.x.end(), size_t(c.D), 0.0);
  Naive want = naive(c);
  EXPECT_NEAR(want.exact.back(), -std::log(1.0 / 97 + 1e-9), 1e-13);
  // The case has teeth: the ε changes the entropy far beyond the tolerance.
  double eps_effect = 0;
  for (size_t t = 0; t < want.exact.size(); ++t) eps_effect = std::max(eps_effect, want.plain[t] - want.exact[t]);
  ASSERT_GT(eps_effect, 1e-9);
  for (int64_t tile : {1, 7, 13, 32, 96, 97, 200}) {
    Result r = run(c, DType::f64, tile, LmEntropyMode::exact, c.V);
    EXPECT_LT(max_abs_diff(r.entropy, want.exact), 1e-12) << "tile " << tile;
    for (int64_t t = 0; t < c.T; ++t)
      EXPECT_NEAR(r.state[size_t(t * 3)] + std::log(r.state[size_t(t * 3 + 1)]), want.lse[size_t(t)], 1e-12)
          << "lse, tile " << tile;
  }
}

TEST(LmEntropy, OnePassIsPlainEntropyWithinVEps) {
  EntCase c = make_case(9, 11, 211, 211, 6.0, 7);
  Naive want = naive(c);
  for (int64_t tile : {5, 64, 211}) {
    Result r = run(c, DType::f64, tile, LmEntropyMode::one_pass, 0);
    EXPECT_LT(max_abs_diff(r.entropy, want.plain), 1e-12) << "tile " << tile;
    for (size_t t = 0; t < want.exact.size(); ++t) {
      const double gap = r.entropy[t] - want.exact[t];
      EXPECT_GE(gap, -1e-12);
      EXPECT_LE(gap, double(c.V) * 1e-9);
    }
  }
}

// Logits near ±1e3: the streaming state must rescale without overflow.
TEST(LmEntropy, LargeLogitsStayFinite) {
  EntCase c = make_case(5, 7, 61, 64, 400.0, 11);
  Naive want = naive(c);
  Result r = run(c, DType::f64, 9, LmEntropyMode::exact, c.V);
  EXPECT_LT(max_abs_diff(r.entropy, want.exact), 1e-11);
  Result f = run(c, DType::f32, 9, LmEntropyMode::exact, c.V);
  for (double v : f.entropy) EXPECT_TRUE(std::isfinite(v));
}

TEST(LmEntropy, FloatMatchesDouble) {
  EntCase c = make_case(13, 29, 1009, 1024, 3.0, 17);
  c.x = round_as(DType::f32, c.x);
  c.emb = round_as(DType::f32, c.emb);
  for (LmEntropyMode mode : {LmEntropyMode::exact, LmEntropyMode::one_pass}) {
    Result f = run(c, DType::f32, 100, mode, c.V), d = run(c, DType::f64, 100, mode, c.V);
    EXPECT_LT(rel_err(f.entropy, d.entropy), 1e-5) << lm_entropy_mode_name(mode);
  }
}

TEST(LmEntropy, RejectsBadInputs) {
  Ctx& ctx = cpu_ctx();
  Buffer x(Device::cpu, DType::f32, {4, 6}), emb(Device::cpu, DType::f32, {10, 6}), emb_bad(Device::cpu, DType::f32, {10, 5});
  Buffer e(Device::cpu, DType::f32, {4}), scratch(Device::cpu, DType::f32, {4, 3}), state(Device::cpu, DType::f32, {4, 3});
  Buffer scratch64(Device::cpu, DType::f64, {4, 3}), state_bad(Device::cpu, DType::f32, {4, 2});
  from_host_f64(ctx, x.t(), rand_uniform(24, -1, 1, 1));
  from_host_f64(ctx, emb.t(), rand_uniform(60, -1, 1, 2));
  auto good = [&] {
    return LmEntropyArgs{.x = x.t(), .emb = emb.t(), .entropy = e.t(), .scratch = scratch.t(), .state = state.t()};
  };
  EXPECT_NO_THROW(lm_entropy_forward(ctx, good()));
  auto a = good();
  a.vocab = 11;
  EXPECT_THROW(lm_entropy_forward(ctx, a), Error);
  a = good();
  a.emb = emb_bad.t();
  EXPECT_THROW(lm_entropy_forward(ctx, a), Error);
  a = good();
  a.scratch = scratch64.t();
  EXPECT_THROW(lm_entropy_forward(ctx, a), Error);
  a = good();
  a.state = state_bad.t();
  EXPECT_THROW(lm_entropy_forward(ctx, a), Error);
}

}  // namespace attnlab::test
