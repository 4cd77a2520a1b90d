// CPU tests of sampling_forward against a reference written from HF's warpers (sort-based, double
// probabilities, no code shared with the op), boundary cases with exactly representable
// probabilities, draw statistics, and sampling_mark_seen.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "core/ops/sampling_math.h"
#include "core/rng.h"
#include "ops/sampling_test_util.h"

namespace attnlab::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The processed logits of one row as the documented rule defines them, in dt's precision.
std::vector<double> processed_row(DType dt, const std::vector<double>& logits, int64_t vocab, int64_t row,
                                  const std::vector<uint32_t>& seen, const SamplingConfig& cfg, bool greedy) {
  const int64_t words = sampling_seen_words(vocab);
  std::vector<double> x(static_cast<size_t>(vocab));
  for (int64_t v = 0; v < vocab; ++v) {
    const bool s = cfg.rp != 1.0f && seen_bit(seen, words, row, v);
    const double raw = logits[size_t(row * vocab + v)];
    if (dt == DType::f64) {
      const double rp = cfg.rp, t = greedy ? 1.0 : 1.0 / double(cfg.temperature);
      double y = s ? (raw < 0 ? raw * rp : raw * (1.0 / rp)) : raw;
      x[v] = y * t;
    } else {
      const float rp = cfg.rp, t = greedy ? 1.0f : 1.0f / cfg.temperature;
      float y = float(raw);
      if (s) y = y < 0 ? y * rp : y * (1.0f / rp);
      x[v] = double(y * t);
    }
  }
  return x;
}

struct RefPick {
  int32_t id = -1;
  double logprob = 0;
  double margin = kInf;  // distance of the nearest decision boundary, as a fraction of the mass
};

double log_sum_exp(const std::vector<double>& s) {
  double m = -kInf;
  for (double v : s) m = std::max(m, v);
  double z = 0;
  for (double v : s) z += v == -kInf ? 0.0 : std::exp(v - m);
  return m + std::log(z);
}

// HF literally: TopK (remove logits < the k-th largest), TopP (stable ascending sort, softmax,
// cumsum, remove cumsum <= float32(1 - top_p) but never the last), softmax, then the draw in the
// documented order (descending logit, ties by descending id): first token whose cumulative
// probability exceeds u.
RefPick reference_pick(std::vector<double> s, const SamplingConfig& cfg, bool greedy, double u) {
  const int64_t vocab = int64_t(s.size());
  RefPick r;
  if (greedy) {
    r.id = int32_t(std::max_element(s.begin(), s.end()) - s.begin());  // first maximum
    r.logprob = s[size_t(r.id)] - log_sum_exp(s);
    return r;
  }
  if (cfg.top_k > 0 && cfg.top_k < vocab) {
    std::vector<double> sorted(s);
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    const double kth = sorted[size_t(cfg.top_k - 1)];
    for (double& v : s)
      if (v < kth) v = -kInf;
  }
  if (cfg.top_p < 1.0) {
    std::vector<int64_t> idx(static_cast<size_t>(vocab));
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
    const double lse = log_sum_exp(s);
    const double threshold = double(float(1.0 - cfg.top_p));
    double cum = 0;
    std::vector<int64_t> removed;
    for (int64_t i = 0; i < vocab; ++i) {
      const double p = s[idx[i]] == -kInf ? 0.0 : std::exp(s[idx[i]] - lse);
      cum += p;
      if (p > 0) r.margin = std::min(r.margin, std::fabs(cum - threshold));
      if (cum <= threshold && i < vocab - 1) removed.push_back(idx[i]);
    }
    for (int64_t v : removed) s[v] = -kInf;
  }
  std::vector<int64_t> order;
  for (int64_t v = 0; v < vocab; ++v)
    if (s[v] != -kInf) order.push_back(v);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] != s[b] ? s[a] > s[b] : a > b; });
  const double lse = log_sum_exp(s);
  double cum = 0;
  for (int64_t v : order) {
    const double p = std::exp(s[v] - lse);
    if (r.id < 0 && cum + p > u) {
      r.id = int32_t(v);
      r.logprob = s[v] - lse;
    }
    if (p > 0) r.margin = std::min(r.margin, std::fabs(cum - u));
    cum += p;
  }
  r.margin = std::min(r.margin, std::fabs(cum - u));
  if (r.id < 0) r.id = int32_t(order.back());  // u beyond the rounded total: the last token
  return r;
}

// Compares the op with the reference on every row; rows whose draw or top-p cut lies within
// `ambiguous` of a boundary may differ (probabilities are rounded differently) and are counted.
void expect_matches_reference(DType dt, int64_t rows, int64_t vocab, const std::vector<double>& logits,
                              const std::vector<uint32_t>& seen, const SamplingConfig& cfg, uint64_t offset,
                              const std::string& label) {
  const double ambiguous = dt == DType::f64 ? 1e-10 : 1e-5;
  const double lp_tol = dt == DType::f64 ? 1e-9 : 2e-5;
  const bool greedy = cfg.greedy || cfg.temperature == 0.0f;
  const SamplingResult got = run_sampling(Device::cpu, dt, rows, vocab, logits, seen, cfg, offset);
  int skipped = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const double u = philox_uniform(cpu_ctx().seed, offset, uint64_t(r));
    const RefPick ref = reference_pick(processed_row(dt, logits, vocab, r, seen, cfg, greedy), cfg, greedy, u);
    if (ref.margin < ambiguous) {
      ++skipped;
      continue;
    }
    ASSERT_EQ(got.ids[size_t(r)], ref.id) << label << " row " << r << " u=" << u;
    EXPECT_NEAR(got.logprobs[size_t(r)], ref.logprob, lp_tol * (1 + std::fabs(ref.logprob))) << label << " row " << r;
  }
  EXPECT_LE(skipped, std::max<int64_t>(1, rows / 20)) << label << ": too many rows at a boundary";
}

std::vector<double> log_probs(const std::vector<double>& p) {
  std::vector<double> l;
  for (double v : p) l.push_back(std::log(v));
  return l;
}

// The set of ids drawn over `draws` offsets (one row), and the log-prob seen for each.
std::map<int32_t, double> drawn_ids(DType dt, const std::vector<double>& logits, const SamplingConfig& cfg,
                                    int draws) {
  const int64_t vocab = int64_t(logits.size());
  std::vector<double> rows_logits;
  for (int d = 0; d < draws; ++d) rows_logits.insert(rows_logits.end(), logits.begin(), logits.end());
  const SamplingResult r = run_sampling(Device::cpu, dt, draws, vocab, rows_logits, {}, cfg, 77);
  std::map<int32_t, double> out;
  for (int d = 0; d < draws; ++d) {
    auto it = out.find(r.ids[size_t(d)]);
    if (it != out.end()) EXPECT_EQ(it->second, r.logprobs[size_t(d)]) << "same token, different log-prob";
    out[r.ids[size_t(d)]] = r.logprobs[size_t(d)];
  }
  return out;
}

class SamplingDtypes : public ::testing::TestWithParam<DType> {};

TEST_P(SamplingDtypes, GreedyTiesGoToTheLowestId) {
  const DType dt = GetParam();
  const std::vector<double> logits = {0.5, -1.0, 2.25, 1.0, 2.25, -3.0, 2.25};
  SamplingConfig cfg;
  cfg.temperature = 0.0f;
  const SamplingResult r = run_sampling(Device::cpu, dt, 1, 7, logits, {}, cfg, 0);
  EXPECT_EQ(r.ids[0], 2);
  double z = 0;
  for (double v : logits) z += std::exp(v - 2.25);
  EXPECT_NEAR(r.logprobs[0], -std::log(z), 1e-6);
  // The greedy flag wins over a non-zero temperature, and the temperature does not enter.
  cfg.temperature = 0.5f;
  cfg.greedy = true;
  const SamplingResult g = run_sampling(Device::cpu, dt, 1, 7, logits, {}, cfg, 0);
  EXPECT_EQ(g.ids[0], 2);
  EXPECT_NEAR(g.logprobs[0], -std::log(z), 1e-6);
}

TEST_P(SamplingDtypes, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  const DType dt = GetParam();
  const int64_t vocab = 4;
  // Seen: tokens 0 (positive logit) and 2 (negative logit).
  const std::vector<uint32_t> seen = {0b0101u};
  SamplingConfig cfg;
  cfg.greedy = true;
  cfg.rp = 1.5f;
  // 1.2/1.5 = 0.8 < 1.0: token 1 wins; unpenalised, token 0 would.
  auto r = run_sampling(Device::cpu, dt, 1, vocab, {1.2, 1.0, -5.0, -6.0}, seen, cfg, 0);
  EXPECT_EQ(r.ids[0], 1);
  const double rp = double(1.5f), pen0 = 1.2 / rp, pen2 = -5.0 * rp;
  const double z = std::exp(pen0 - 1.0) + 1.0 + std::exp(pen2 - 1.0) + std::exp(-6.0 - 1.0);
  EXPECT_NEAR(r.logprobs[0], -std::log(z), 1e-6);
  // Negative: −0.5·1.5 = −0.75 < −0.7: token 3 (unseen) wins over the seen token 2.
  r = run_sampling(Device::cpu, dt, 1, vocab, {-9.0, -8.0, -0.5, -0.7}, seen, cfg, 0);
  EXPECT_EQ(r.ids[0], 3);
  // Without the penalty token 2 wins: the bitmask is what moved it.
  cfg.rp = 1.0f;
  r = run_sampling(Device::cpu, dt, 1, vocab, {-9.0, -8.0, -0.5, -0.7}, seen, cfg, 0);
  EXPECT_EQ(r.ids[0], 2);
}

TEST_P(SamplingDtypes, TopKKeepsEveryTieOfTheKthLogit) {
  const DType dt = GetParam();
  // k = 3: the 3rd largest is 3.0, shared by ids 2, 3 and 5; HF keeps all of them (5 tokens).
  const std::vector<double> logits = {5.0, 4.0, 3.0, 3.0, 1.0, 3.0, 2.0};
  SamplingConfig cfg;
  cfg.top_k = 3;
  cfg.temperature = 8.0f;  // flat enough that every kept token shows up
  const auto drawn = drawn_ids(dt, logits, cfg, 400);
  EXPECT_EQ(drawn.size(), 5u);
  for (int32_t id : {0, 1, 2, 3, 5}) EXPECT_TRUE(drawn.count(id)) << "id " << id << " never drawn";
  // Each log-prob is normalised over exactly the kept five.
  std::vector<double> kept;
  for (int32_t id : {0, 1, 2, 3, 5}) kept.push_back(logits[size_t(id)] / double(8.0f));
  const double lse = log_sum_exp(kept);
  for (const auto& [id, lp] : drawn) EXPECT_NEAR(lp, logits[size_t(id)] / double(8.0f) - lse, 1e-6) << id;
}

TEST_P(SamplingDtypes, TopPBoundaryFollowsHF) {
  const DType dt = GetParam();
  SamplingConfig cfg;
  // Four equal logits: probabilities 0.25 exactly. HF's ascending stable sort puts ids 0, 1 first;
  // their cumulative 0.25, 0.5 are <= 1 - 0.5 and are removed: ids 2 and 3 stay, at 0.5 each.
  cfg.top_p = 0.5;
  auto drawn = drawn_ids(dt, {1.0, 1.0, 1.0, 1.0}, cfg, 200);
  EXPECT_EQ(drawn.size(), 2u);
  EXPECT_TRUE(drawn.count(2) && drawn.count(3));
  for (const auto& [id, lp] : drawn) EXPECT_NEAR(lp, std::log(0.5), 1e-6);
  // Just above 0.5 the third token is needed.
  cfg.top_p = 0.5001;
  EXPECT_EQ(drawn_ids(dt, {1.0, 1.0, 1.0, 1.0}, cfg, 200).size(), 3u);

  if (dt == DType::f64) {
    // 0.5, 0.3, 0.2 with top_p = 0.8: the 0.2 token's cumulative 0.2 is <= float32(0.2), removed.
    // (In f32 the token probabilities are only float-accurate, which leaves this exact boundary to
    // rounding, as in HF's float32 softmax.)
    const auto lp = log_probs({0.5, 0.3, 0.2});
    cfg.top_p = 0.8;
    drawn = drawn_ids(dt, lp, cfg, 300);
    EXPECT_EQ(drawn.size(), 2u);
    EXPECT_FALSE(drawn.count(2));
    for (const auto& [id, l] : drawn) EXPECT_NEAR(l, lp[size_t(id)] - std::log(0.8), 1e-9) << id;
  }
  const auto lp = log_probs({0.5, 0.3, 0.2});
  cfg.top_p = 0.79;
  EXPECT_EQ(drawn_ids(dt, lp, cfg, 300).size(), 2u);
  cfg.top_p = 0.81;
  drawn = drawn_ids(dt, lp, cfg, 300);
  EXPECT_EQ(drawn.size(), 3u);
  for (const auto& [id, l] : drawn) EXPECT_NEAR(l, lp[size_t(id)], 1e-6) << id;
  cfg.top_p = 0.49;  // never fewer than one token
  drawn = drawn_ids(dt, lp, cfg, 50);
  ASSERT_EQ(drawn.size(), 1u);
  EXPECT_NEAR(drawn.at(0), 0.0, 1e-9);
  // Dyadic, with a tie: 0.5, 0.25, 0.25 and top_p = 0.5 keeps the 0.5 token only.
  cfg.top_p = 0.5;
  EXPECT_EQ(drawn_ids(dt, {0.0, -std::log(2.0), -std::log(2.0)}, cfg, 100).size(), 1u);
}

TEST_P(SamplingDtypes, MatchesHFReferenceOnRandomRows) {
  const DType dt = GetParam();
  std::vector<SamplingConfig> configs(8);
  configs[1].top_k = 1;
  configs[2].top_k = 7;
  configs[3].top_p = 0.9;
  configs[4] = {1.1f, 0.7f, false, 20, 0.8};  // Qwen2.5-Instruct's generation config
  configs[5] = {1.3f, 1.7f, false, 50, 0.95};
  configs[6] = {1.2f, 0.0f, false, 0, 1.0};   // greedy with a penalty
  configs[7] = {1.0f, 0.4f, false, 0, 0.6};
  const int64_t rows = 16;
  uint64_t case_id = 0;
  for (int64_t vocab : {5, 97, 1031}) {
    for (bool ties : {false, true}) {
      auto logits = rand_normal(size_t(rows * vocab), 2.0, 11 + vocab + ties);
      if (ties)  // steps of 0.5: ties at every cut and inside the draw order
        for (double& v : logits) v = std::round(v * 2.0) / 2.0;
      const auto seen = random_seen(rows, vocab, 0.2, 5 + vocab);
      for (size_t c = 0; c < configs.size(); ++c) {
        ++case_id;
        expect_matches_reference(dt, rows, vocab, logits, configs[c].rp != 1.0f ? seen : std::vector<uint32_t>{},
                                 configs[c], 1000 * case_id,
                                 "V=" + std::to_string(vocab) + (ties ? " ties" : "") + " config " + std::to_string(c));
      }
    }
  }
}

TEST_P(SamplingDtypes, DrawFrequenciesWithinFourSigma) {
  const DType dt = GetParam();
  const std::vector<double> p = {0.4, 0.25, 0.15, 0.1, 0.07, 0.03};
  const auto logits_row = log_probs(p);
  const int64_t rows = 1000, calls = 20, vocab = int64_t(p.size());
  std::vector<double> logits;
  for (int64_t r = 0; r < rows; ++r) logits.insert(logits.end(), logits_row.begin(), logits_row.end());
  struct Case {
    SamplingConfig cfg;
    std::vector<double> expected;
  };
  std::vector<Case> cases(3);
  cases[0].expected = p;
  cases[1].cfg.top_k = 3;  // renormalised over 0.8
  cases[1].expected = {0.5, 0.3125, 0.1875, 0, 0, 0};
  cases[2].cfg.top_p = 0.7;  // ascending cumsum 0.03, 0.10, 0.20 <= 0.3 removed
  cases[2].expected = {0.5, 0.3125, 0.1875, 0, 0, 0};
  for (size_t c = 0; c < cases.size(); ++c) {
    std::vector<int64_t> counts(size_t(vocab), 0);
    for (int64_t k = 0; k < calls; ++k) {
      const auto r = run_sampling(Device::cpu, dt, rows, vocab, logits, {}, cases[c].cfg, uint64_t(k * rows), false);
      for (int32_t id : r.ids) {
        ASSERT_TRUE(id >= 0 && id < vocab) << id;
        ++counts[size_t(id)];
      }
    }
    const double n = double(rows * calls);
    for (int64_t v = 0; v < vocab; ++v) {
      const double q = cases[c].expected[size_t(v)], sigma = std::sqrt(n * q * (1 - q));
      if (q == 0) EXPECT_EQ(counts[size_t(v)], 0) << "case " << c << " token " << v;
      else EXPECT_LE(std::fabs(double(counts[size_t(v)]) - n * q), 4 * sigma) << "case " << c << " token " << v;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, SamplingDtypes, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(Sampling, RowBUsesDrawBOfTheOffset) {
  const int64_t vocab = 50, rows = 5;
  const auto row = rand_normal(size_t(vocab), 1.0, 3);
  std::vector<double> logits;
  for (int64_t r = 0; r < rows; ++r) logits.insert(logits.end(), row.begin(), row.end());
  const auto batch = run_sampling(Device::cpu, DType::f64, rows, vocab, logits, {}, {}, 400);
  std::set<int32_t> distinct(batch.ids.begin(), batch.ids.end());
  for (int64_t r = 0; r < rows; ++r) {
    const auto single = run_sampling(Device::cpu, DType::f64, 1, vocab, row, {}, {}, 400 + uint64_t(r));
    EXPECT_EQ(single.ids[0], batch.ids[size_t(r)]) << r;
  }
  EXPECT_GT(distinct.size(), 1u) << "five draws from a flat distribution all gave one token";
}

TEST(Sampling, MassIsExpTimesTwoToThe44) {
  // The float exp behind every mass, against libm over its whole range.
  double worst = 0;
  for (int i = 0; i <= 31000; ++i) {
    const float d = -0.001f * float(i);
    const double ref = std::exp(double(d));
    worst = std::max(worst, std::fabs(double(sampling_exp_f32(d)) - ref) / ref);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(sampling_mass(0.0f), uint64_t(1) << 44);
  EXPECT_EQ(sampling_mass(-40.0f), 0u);
  EXPECT_EQ(sampling_mass(-std::numeric_limits<float>::infinity()), 0u);
  EXPECT_EQ(sampling_mass(0.0), uint64_t(1) << 44);
}

TEST(Sampling, MarkSeenSetsExactlyTheGivenBits) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 3, vocab = 100, words = sampling_seen_words(vocab);
  Buffer seen = make_tensor(Device::cpu, DType::u32, {rows, words}, std::vector<double>(size_t(rows * words), 0.0));
  const std::vector<int32_t> prompt = {5, 99, -1, 31, 32, 0, 64, 64, -1, 7, 7, 98};  // [3, 4], -1 = padding
  sampling_mark_seen(c, seen.t(), make_ids(Device::cpu, {rows, 4}, prompt).t());
  sampling_mark_seen(c, seen.t(), make_ids(Device::cpu, {rows}, {63, 1, 99}).t());
  const auto bits = to_host_f64(c, seen.t());
  const std::set<int> expect[3] = {{5, 99, 31, 63}, {32, 0, 64, 1}, {7, 98, 99}};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < words * 32; ++v) {
      const bool set = (uint32_t(bits[size_t(r * words + (v >> 5))]) >> (v & 31)) & 1u;
      EXPECT_EQ(set, expect[r].count(int(v)) == 1) << "row " << r << " token " << v;
    }
  EXPECT_THROW(sampling_mark_seen(c, seen.t(), make_ids(Device::cpu, {rows}, {1, 128, 2}).t()), Error);
}

TEST(Sampling, RejectsBadArguments) {
  Ctx& c = cpu_ctx();
  Buffer logits = make_tensor(Device::cpu, DType::f32, {2, 40}, rand_normal(80, 1.0, 1));
  Buffer ids = make_poisoned(Device::cpu, DType::i32, {2});
  Buffer seen = make_tensor(Device::cpu, DType::u32, {2, 2}, {1, 2, 3, 4});
  SamplingArgs a;
  a.logits = logits.t();
  a.out_ids = ids.t();
  EXPECT_NO_THROW(sampling_forward(c, a));
  auto expect_throw = [&](auto edit) {
    SamplingArgs b = a;
    edit(b);
    EXPECT_THROW(sampling_forward(c, b), Error);
  };
  expect_throw([](SamplingArgs& b) { b.repetition_penalty = 1.1f; });  // no seen bitmask
  expect_throw([&](SamplingArgs& b) {  // wrong shape
    b.repetition_penalty = 1.1f;
    b.seen = seen.t().view({4});
  });
  expect_throw([](SamplingArgs& b) { b.top_p = 0.0; });
  expect_throw([](SamplingArgs& b) { b.top_p = 1.5; });
  expect_throw([](SamplingArgs& b) { b.temperature = -1.0f; });
  expect_throw([](SamplingArgs& b) { b.temperature = 1e-39f; });  // 1/T overflows
  expect_throw([](SamplingArgs& b) {
    b.repetition_penalty = 0.0f;
  });
  expect_throw([](SamplingArgs& b) { b.top_k = -2; });
  expect_throw([&](SamplingArgs& b) { b.out_ids = logits.t().view({80}); });
  Buffer lp64 = make_poisoned(Device::cpu, DType::f64, {2});
  expect_throw([&](SamplingArgs& b) { b.out_logprobs = lp64.t(); });  // f32 logits: f32 log-probs
  Buffer bf = make_tensor(Device::cpu, DType::bf16, {2, 40}, rand_normal(80, 1.0, 2));
  expect_throw([&](SamplingArgs& b) { b.logits = bf.t(); });
  auto bad = rand_normal(80, 1.0, 3);
  bad[45] = std::nan("");
  Buffer with_nan = make_tensor(Device::cpu, DType::f32, {2, 40}, bad);
  expect_throw([&](SamplingArgs& b) { b.logits = with_nan.t(); });
  std::vector<double> all_masked(80, 0.5);
  for (int v = 0; v < 40; ++v) all_masked[size_t(v)] = -kInf;
  Buffer masked = make_tensor(Device::cpu, DType::f32, {2, 40}, all_masked);
  expect_throw([&](SamplingArgs& b) { b.logits = masked.t(); });
}

TEST(Sampling, TopPFractionIsFloat32OfOneMinusTopP) {
  // r = float(1 - top_p) held exactly as mantissa · 2^-shift.
  for (double top_p : {0.8, 0.9, 0.95, 0.5, 0.123456, 1e-9}) {
    const SamplingTopP f = sampling_top_p_fraction(top_p);
    EXPECT_EQ(std::ldexp(double(f.mantissa), -f.shift), double(float(1.0 - top_p))) << top_p;
  }
  const uint64_t total = (uint64_t(1) << 38) + 12345;  // total · 24-bit mantissa fits a long double
  const SamplingTopP f = sampling_top_p_fraction(0.8);
  const long double exact = (long double)total * (long double)float(0.2);
  EXPECT_EQ(sampling_top_p_bound(total, f), total - uint64_t(std::floor(exact)));
}

}  // namespace
}  // namespace attnlab::test
