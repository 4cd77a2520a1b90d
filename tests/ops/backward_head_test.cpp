#include "core/ops/backward_head.h"

#include <cmath>

#include "ops/backward_head_test_util.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// V = 23 (prime) classes in 29 embedding rows (padding), tile 7: four tiles, the last of 2 rows.
constexpr int64_t kN = 7, kV = 23, kVp = 29;

BackwardHeadSpec spec_of(int64_t H, int64_t latent, int64_t top_k, int64_t dk = 0, int64_t dv = 0) {
  BackwardHeadSpec s;
  s.D = 6, s.latent = latent, s.heads = H, s.top_k = top_k, s.dk = dk, s.dv = dv, s.tile = 7;
  s.tau = 0.8;
  return s;
}

// Single and multi-head, with and without latent, with and without top-k.
std::vector<BackwardHeadSpec> all_specs() {
  return {spec_of(1, 0, 0), spec_of(1, 5, 0),       spec_of(1, 0, 4),      spec_of(3, 0, 0, 9, 6),
          spec_of(2, 0, 5), spec_of(3, 5, 4, 6, 9), spec_of(2, 4, 0, 4, 8)};
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::isfinite(a[i]) ? std::fabs(a[i] - b[i]) : INFINITY);
  return m;
}

}  // namespace

TEST(BackwardHead, ForwardMatchesPlainLoops) {
  uint64_t seed = 100;
  for (const BackwardHeadSpec& s : all_specs()) {
    HeadCase c = make_head_case(s, kN, kV, kVp, seed += 10);
    HeadResult got = run_head(Device::cpu, DType::f64, c, false);
    HeadResult ref = reference_head(c);
    EXPECT_LT(max_diff(got.loss, ref.loss), 1e-12) << c.label();
    EXPECT_LT(max_diff(got.logprobs, ref.logprobs), 1e-12) << c.label();
    EXPECT_EQ(got.loss[1], 0.0) << "ignored row";
    // Not a trivial distribution: the losses differ between rows and from log V.
    EXPECT_GT(std::fabs(got.loss[0] - got.loss[2]), 1e-3) << c.label();
    EXPECT_GT(std::fabs(got.loss[0] - std::log(double(kV))), 1e-3) << c.label();
  }
}

TEST(BackwardHead, FiniteDifferenceOfEveryParameter) {
  double worst = 0;
  uint64_t seed = 300;
  for (const BackwardHeadSpec& s : all_specs()) {
    HeadCase c = make_head_case(s, kN, kV, kVp, seed += 10);
    const double dloss = 1.7;
    const double count = double(count_valid_targets_host(c.targets));
    HeadResult ana = run_head(Device::cpu, DType::f64, c, true, dloss);
    auto loss = [&] {
      HeadResult r = run_head(Device::cpu, DType::f64, c, false, 1.0, {}, 0.0, false);
      double l = 0;
      for (double v : r.loss) l += v;
      return dloss * l / count;
    };
    std::vector<GradInput> inputs;
    auto params = c.params();
    for (size_t i = 0; i < params.size(); ++i) {
      if (params[i]->empty()) continue;
      ASSERT_EQ(ana.grads[i].size(), params[i]->size()) << kHeadParamNames[i];
      inputs.push_back({kHeadParamNames[i], params[i]->data(), params[i]->size(), &ana.grads[i]});
    }
    std::string report;
    const double err = fd_check(loss, inputs, 1e-6, 64, &report);
    EXPECT_LT(err, 1e-7) << c.label() << "\n" << report;
    worst = std::max(worst, err);
    // Every gradient is non-trivial (a zero gradient would pass FD only if the loss ignored it).
    for (size_t i = 0; i < params.size(); ++i)
      if (!params[i]->empty()) {
        double n = 0;
        for (double v : ana.grads[i]) n += v * v;
        EXPECT_GT(n, 1e-12) << c.label() << " " << kHeadParamNames[i];
      }
  }
  record_fd_error("backward_head", worst);
}

// §5.3: at the identity init (γ = 1, W = I, β = 1, no latent, one head) the scores are
// sqrt(D)·cos(m_t, Ê_j) with m_t the expected normalised embedding under GPT-2's distribution.
// Computed here from the definition, not from the op's steps; the eps of the RMSNorms is the only
// difference (relative ~1e-6).
TEST(BackwardHead, IdentityInitScoresAreScaledCosines) {
  BackwardHeadSpec s = spec_of(1, 0, 0);
  s.D = 8, s.tau = 1.0;
  HeadCase c = make_head_case(s, kN, kV, kVp, 501);
  {
    std::vector<std::unique_ptr<Buffer>> keep;
    BackwardHeadParams p;
    auto buf = [&](DType t, std::initializer_list<int64_t> dims) {
      keep.push_back(std::make_unique<Buffer>(make_poisoned(Device::cpu, t, dims)));
      return keep.back()->t();
    };
    const int64_t D = s.D;
    p.embed_norm = buf(DType::f64, {D}), p.k_proj = buf(DType::f64, {D, D}), p.v_proj = buf(DType::f64, {D, D});
    p.q_norm = buf(DType::f64, {D}), p.q_proj = buf(DType::f64, {D, D}), p.beta = buf(DType::f64, {1});
    backward_head_identity_init(cpu_ctx(), s, p);
    c.embed_norm = to_host_f64(cpu_ctx(), p.embed_norm), c.k_proj = to_host_f64(cpu_ctx(), p.k_proj);
    c.v_proj = to_host_f64(cpu_ctx(), p.v_proj), c.q_norm = to_host_f64(cpu_ctx(), p.q_norm);
    c.q_proj = to_host_f64(cpu_ctx(), p.q_proj), c.beta = to_host_f64(cpu_ctx(), p.beta);
  }
  const int64_t D = s.D;
  std::vector<double> want(static_cast<size_t>(kN * kV));
  for (int64_t t = 0; t < kN; ++t) {
    std::vector<double> ehat(static_cast<size_t>(kV * D)), z(static_cast<size_t>(kV));
    for (int64_t j = 0; j < kV; ++j) {
      double q = 0, dot = 0;
      for (int64_t i = 0; i < D; ++i) {
        const double e = c.embed[size_t(j * D + i)];
        q += e * e;
        dot += c.hidden[size_t(t * D + i)] * e;
      }
      for (int64_t i = 0; i < D; ++i) ehat[size_t(j * D + i)] = c.embed[size_t(j * D + i)] / std::sqrt(q / double(D));
      z[size_t(j)] = dot;
    }
    double zs = 0;
    for (double v : z) zs += std::exp(v);
    std::vector<double> m(static_cast<size_t>(D), 0.0);
    for (int64_t j = 0; j < kV; ++j)
      for (int64_t i = 0; i < D; ++i) m[size_t(i)] += std::exp(z[size_t(j)]) / zs * ehat[size_t(j * D + i)];
    std::vector<double> sc(static_cast<size_t>(kV));
    double mm = 0;
    for (double v : m) mm += v * v;
    for (int64_t j = 0; j < kV; ++j) {
      double dot = 0, ee = 0;
      for (int64_t i = 0; i < D; ++i) {
        dot += m[size_t(i)] * ehat[size_t(j * D + i)];
        ee += ehat[size_t(j * D + i)] * ehat[size_t(j * D + i)];
      }
      sc[size_t(j)] = std::sqrt(double(D)) * dot / std::sqrt(mm * ee);
    }
    double ss = 0;
    for (double v : sc) ss += std::exp(v);
    for (int64_t j = 0; j < kV; ++j) want[size_t(t * kV + j)] = sc[size_t(j)] - std::log(ss);
  }
  HeadResult got = run_head(Device::cpu, DType::f64, c, false);
  EXPECT_LT(max_diff(got.logprobs, want), 1e-4);
  // The check has teeth: β = 1.1 (scores scaled by 10%) is far outside the tolerance.
  c.beta[0] = 1.1;
  EXPECT_GT(max_diff(run_head(Device::cpu, DType::f64, c, false).logprobs, want), 1e-2);
}

TEST(BackwardHead, TileSizeDoesNotChangeTheResult) {
  for (const BackwardHeadSpec& base : {spec_of(1, 0, 4), spec_of(3, 5, 0, 6, 9)}) {
    BackwardHeadSpec s = base;
    s.tile = kV;
    HeadCase c = make_head_case(s, kN, kV, kVp, 601);
    HeadResult ref = run_head(Device::cpu, DType::f64, c, true);
    for (int64_t tile : {1, 5, 22, 1000}) {
      c.spec.tile = tile;
      HeadResult got = run_head(Device::cpu, DType::f64, c, true);
      EXPECT_LT(max_diff(got.loss, ref.loss), 1e-12) << "tile " << tile;
      EXPECT_LT(max_diff(got.logprobs, ref.logprobs), 1e-12) << "tile " << tile;
      for (size_t i = 0; i < ref.grads.size(); ++i)
        EXPECT_LT(max_diff(got.grads[i], ref.grads[i]), 1e-12) << "tile " << tile << " " << kHeadParamNames[i];
    }
  }
}

TEST(BackwardHead, FloatMatchesDouble) {
  uint64_t seed = 700;
  for (const BackwardHeadSpec& s : all_specs()) {
    HeadCase c = make_head_case(s, kN, kV, kVp, seed += 10);
    c.hidden = round_as(DType::f32, c.hidden), c.embed = round_as(DType::f32, c.embed);
    for (auto* p : c.params()) *p = round_as(DType::f32, *p);
    HeadResult f = run_head(Device::cpu, DType::f32, c, true);
    HeadResult d = run_head(Device::cpu, DType::f64, c, true);
    EXPECT_LT(rel_err(f.loss, d.loss), 1e-5) << c.label();
    EXPECT_LT(rel_err(f.logprobs, d.logprobs), 1e-5) << c.label();
    for (size_t i = 0; i < d.grads.size(); ++i)
      EXPECT_LT(rel_err(f.grads[i], d.grads[i]), 1e-4) << c.label() << " " << kHeadParamNames[i];
  }
}

// Frozen parameters: the gradients that are asked for equal those of a full backward, and
// gradients accumulate into what the buffers held.
TEST(BackwardHead, FrozenParametersAndAccumulation) {
  HeadCase c = make_head_case(spec_of(2, 4, 0, 4, 8), kN, kV, kVp, 801);
  HeadResult full = run_head(Device::cpu, DType::f64, c, true);
  // Each subset leaves a different part of the chain out (only β; only the query side; only W_V).
  const std::vector<std::vector<bool>> subsets = {{1, 1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 0, 0, 1}, {1, 1, 1, 0, 1, 1, 1},
                                                  {0, 1, 1, 1, 1, 1, 1}};
  for (const auto& frozen : subsets) {
    HeadResult part = run_head(Device::cpu, DType::f64, c, true, 1.0, frozen);
    for (size_t i = 0; i < 7; ++i) {
      if (frozen[i]) EXPECT_TRUE(part.grads[i].empty());
      else EXPECT_LT(max_diff(part.grads[i], full.grads[i]), 1e-12) << kHeadParamNames[i];
    }
  }
  HeadResult acc = run_head(Device::cpu, DType::f64, c, true, 1.0, {}, 0.25);
  for (size_t i = 0; i < 7; ++i) {
    std::vector<double> want = full.grads[i];
    for (double& v : want) v += 0.25;
    EXPECT_LT(max_diff(acc.grads[i], want), 1e-12) << kHeadParamNames[i];
  }
}

// vocab_ready reuses K, Vv, Ê (and Ẽ) from an earlier forward: same results as computing them.
TEST(BackwardHead, VocabReadyReusesTheVocabularySide) {
  HeadCase c = make_head_case(spec_of(3, 5, 4, 6, 9), kN, kV, kVp, 851);
  HeadResult fresh = run_head(Device::cpu, DType::f64, c, true);
  HeadResult reused = run_head(Device::cpu, DType::f64, c, true, 1.0, {}, 0.0, true, true);
  EXPECT_EQ(reused.loss, fresh.loss);
  EXPECT_EQ(reused.logprobs, fresh.logprobs);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(reused.grads[i], fresh.grads[i]) << kHeadParamNames[i];
}

// Generation: no targets, only the log-probabilities, the same as with targets; they are a
// distribution over the V classes.
TEST(BackwardHead, LogprobsWithoutTargets) {
  HeadCase c = make_head_case(spec_of(2, 0, 5), kN, kV, kVp, 871);
  HeadResult with = run_head(Device::cpu, DType::f64, c, false);
  c.targets.clear();
  HeadResult without = run_head(Device::cpu, DType::f64, c, false, 1.0, {}, 0.0, true, true);
  EXPECT_TRUE(without.loss.empty());
  EXPECT_EQ(without.logprobs, with.logprobs);
  for (int64_t t = 0; t < kN; ++t) {
    double mass = 0;
    for (int64_t j = 0; j < kV; ++j) mass += std::exp(without.logprobs[size_t(t * kV + j)]);
    EXPECT_NEAR(mass, 1.0, 1e-12) << "row " << t;
  }
}

// top_k ≥ V is the plain softmax; top_k = 1 puts all weight on the largest logit.
TEST(BackwardHead, TopKLimits) {
  HeadCase c = make_head_case(spec_of(1, 0, 0), kN, kV, kVp, 901);
  HeadResult plain = run_head(Device::cpu, DType::f64, c, false);
  c.spec.top_k = kV;
  EXPECT_LT(max_diff(run_head(Device::cpu, DType::f64, c, false).logprobs, plain.logprobs), 1e-14);
  c.spec.top_k = 1;
  HeadResult one = run_head(Device::cpu, DType::f64, c, false);
  EXPECT_LT(max_diff(one.logprobs, reference_head(c).logprobs), 1e-12);
  EXPECT_GT(max_diff(one.logprobs, plain.logprobs), 1e-3);
}

TEST(BackwardHead, RejectsBadInputs) {
  BackwardHeadSpec s = spec_of(4, 0, 0);  // 4 does not divide dk = dv = 6
  EXPECT_THROW(backward_head_workspace_bytes(cpu_ctx(), s, kN, kV, DType::f64, false), Error);
  s = spec_of(1, 0, 0);
  s.tau = 0;
  EXPECT_THROW(backward_head_saved_bytes(s, kN, kV, DType::f64), Error);
  HeadCase c = make_head_case(spec_of(1, 0, 0), kN, kV, kVp, 1001);
  c.targets[0] = int32_t(kV);  // a padding row is not a class
  EXPECT_THROW(run_head(Device::cpu, DType::f64, c, false), Error);
}

}  // namespace attnlab::test
