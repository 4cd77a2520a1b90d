#include <cmath>
#include <tuple>

#include "core/ops/cross_entropy.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// Direct double log-softmax, independent of the op's online formulation.
struct CeReference {
  std::vector<double> loss, lse, dlogits;
};
CeReference ce_reference(const std::vector<double>& x, const std::vector<int32_t>& t, int64_t n, int64_t v,
                         double dloss = 1.0, double count = 1.0) {
  CeReference r{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n * v)};
  for (int64_t i = 0; i < n; ++i) {
    const double* row = x.data() + i * v;
    double m = row[0];
    for (int64_t j = 1; j < v; ++j) m = std::max(m, row[j]);
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(row[j] - m);
    r.lse[i] = m + std::log(s);
    const bool valid = t[i] != kIgnoreIndex;
    r.loss[i] = valid ? -(row[t[i]] - r.lse[i]) : 0.0;
    for (int64_t j = 0; j < v; ++j)
      r.dlogits[i * v + j] =
          valid ? (std::exp(row[j] - r.lse[i]) - (j == t[i] ? 1.0 : 0.0)) * dloss / count : 0.0;
  }
  return r;
}

// Targets in [0, V) with every `ignore_every`-th row ignored (row 1, 1 + k, ...).
std::vector<int32_t> make_targets(int64_t n, int64_t v, uint64_t seed, int64_t ignore_every = 4) {
  auto t = rand_ints(size_t(n), 0, int32_t(v), seed);
  for (int64_t i = 1; i < n; i += ignore_every) t[size_t(i)] = kIgnoreIndex;
  return t;
}

int64_t valid_rows(const std::vector<int32_t>& t) { return count_valid_targets(t.data(), int64_t(t.size())); }

struct ForwardResult {
  std::vector<double> loss, lse;
};
ForwardResult run_forward(DType dt, const std::vector<double>& x, const std::vector<int32_t>& t, int64_t n,
                          int64_t v) {
  Ctx& c = cpu_ctx();
  Buffer logits = make_tensor(Device::cpu, dt, {n, v}, x, "logits");
  Buffer targets = make_ids(Device::cpu, {n}, t, "targets");
  Buffer loss = make_poisoned(Device::cpu, acc_dtype(dt), {n}, "loss");
  Buffer lse = make_poisoned(Device::cpu, acc_dtype(dt), {n}, "lse");
  cross_entropy_forward(c, {logits.t(), targets.t(), loss.t(), lse.t()});
  return {to_host_f64(c, loss.t()), to_host_f64(c, lse.t())};
}

class CrossEntropyCpu : public ::testing::TestWithParam<DType> {};

TEST_P(CrossEntropyCpu, ForwardMatchesDoubleLogSoftmax) {
  const DType dt = GetParam();
  const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
  for (auto [n, v] : {std::pair<int64_t, int64_t>{13, 3}, {13, 1031}, {5, 4099}}) {
    auto x = round_as(dt, rand_normal(size_t(n * v), 3.0, 11 + v));
    auto t = make_targets(n, v, 12 + v);
    auto ref = ce_reference(x, t, n, v);
    auto got = run_forward(dt, x, t, n, v);
    EXPECT_LT(rel_err(got.loss, ref.loss), tol) << "V=" << v;
    EXPECT_LT(rel_err(got.lse, ref.lse), tol) << "V=" << v;
    for (int64_t i = 1; i < n; i += 4) EXPECT_EQ(got.loss[size_t(i)], 0.0) << "ignored row " << i;
  }
}

// Logits near ±1e4: exp overflows (float and double alike) unless the row maximum is taken out.
TEST_P(CrossEntropyCpu, LargeLogitsDoNotOverflow) {
  const DType dt = GetParam();
  const int64_t n = 6, v = 2053;
  auto x = rand_uniform(size_t(n * v), -6, 6, 21);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < v; ++j) x[size_t(i * v + j)] += (i % 2 ? -1e4 : 1e4);
  x = round_as(dt, x);
  auto t = make_targets(n, v, 22, 5);
  auto ref = ce_reference(x, t, n, v);
  auto got = run_forward(dt, x, t, n, v);
  // The loss is formed as (max − x_t) + log Σ, so it keeps float accuracy even at 1e4.
  EXPECT_LT(rel_err(got.loss, ref.loss), dt == DType::f64 ? 1e-12 : 2e-6);
  EXPECT_LT(rel_err(got.lse, ref.lse), dt == DType::f64 ? 1e-14 : 1e-7);
}

TEST_P(CrossEntropyCpu, FullVocabularyFewRows) {
  const DType dt = GetParam();
  const int64_t n = 3, v = 151936;
  auto x = round_as(dt, rand_normal(size_t(n * v), 2.0, 31));
  std::vector<int32_t> t = {151935, kIgnoreIndex, 0};
  auto ref = ce_reference(x, t, n, v);
  auto got = run_forward(dt, x, t, n, v);
  EXPECT_LT(rel_err(got.loss, ref.loss), dt == DType::f64 ? 1e-12 : 1e-5);
  EXPECT_LT(rel_err(got.lse, ref.lse), dt == DType::f64 ? 1e-13 : 1e-6);
}

TEST_P(CrossEntropyCpu, BackwardMatchesSoftmaxMinusOnehot) {
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  const int64_t n = 9, v = 1031;
  auto x = round_as(dt, rand_normal(size_t(n * v), 2.5, 41));
  auto t = make_targets(n, v, 42, 3);
  // A global count larger than this call's valid rows, as with micro-batches.
  const double count = double(valid_rows(t)) + 17, dloss = 0.75;
  auto ref = ce_reference(x, t, n, v, dloss, count);
  Buffer logits = make_tensor(Device::cpu, dt, {n, v}, x, "logits");
  Buffer targets = make_ids(Device::cpu, {n}, t, "targets");
  Buffer loss = make_poisoned(Device::cpu, acc_dtype(dt), {n}, "loss");
  Buffer lse = make_poisoned(Device::cpu, acc_dtype(dt), {n}, "lse");
  Buffer dlogits = make_poisoned(Device::cpu, dt, {n, v}, "dlogits");
  cross_entropy_forward(c, {logits.t(), targets.t(), loss.t(), lse.t()});
  CrossEntropyBackwardArgs b{logits.t(), targets.t(), lse.t(), dlogits.t(), dloss, count};
  cross_entropy_backward(c, b);
  auto got = to_host_f64(c, dlogits.t());
  EXPECT_LT(rel_err(got, ref.dlogits), dt == DType::f64 ? 1e-12 : 1e-5);
  for (int64_t j = 0; j < v; ++j) ASSERT_EQ(got[size_t(1 * v + j)], 0.0) << "ignored row 1, column " << j;
  // Each valid row of softmax − onehot sums to zero.
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += got[size_t(i * v + j)];
    EXPECT_NEAR(s, 0.0, dt == DType::f64 ? 1e-14 : 1e-6) << "row " << i;
  }

  // In place: dlogits written over the logits buffer gives the same bits.
  cross_entropy_backward(c, {logits.t(), targets.t(), lse.t(), logits.t(), dloss, count});
  auto in_place = to_host_f64(c, logits.t());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(in_place[i], got[i]) << "element " << i;
}

// Rows of vp columns whose first v are classes (the LM head's padded vocabulary): the padding
// columns hold values that would dominate the log-sum-exp (and a NaN) if they were read. Forward
// must equal the compact [n, v] reference; backward must match it on the classes and write exact
// zeros over the (poisoned) padding, separately and in place.
TEST_P(CrossEntropyCpu, PaddedRowsUseOnlyTheFirstVocabColumns) {
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  for (auto [n, v, vp] : {std::tuple<int64_t, int64_t, int64_t>{7, 37, 64}, {5, 1031, 1088}, {3, 1, 11}}) {
    SCOPED_TRACE("V=" + std::to_string(v) + " Vp=" + std::to_string(vp));
    auto compact = round_as(dt, rand_normal(size_t(n * v), 2.0, uint64_t(71 + v)));
    std::vector<double> padded(size_t(n * vp));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < vp; ++j)
        padded[size_t(i * vp + j)] = j < v ? compact[size_t(i * v + j)] : (j == vp - 1 ? NAN : 50.0 + double(j));
    auto t = make_targets(n, v, uint64_t(72 + v), 3);
    const double count = double(valid_rows(t)) + 1, dloss = 0.5;
    auto ref = ce_reference(compact, t, n, v, dloss, count);

    Buffer logits = make_tensor(Device::cpu, dt, {n, vp}, padded, "logits");
    Buffer targets = make_ids(Device::cpu, {n}, t, "targets");
    Buffer loss = make_poisoned(Device::cpu, acc_dtype(dt), {n}, "loss");
    Buffer lse = make_poisoned(Device::cpu, acc_dtype(dt), {n}, "lse");
    Buffer dlogits = make_poisoned(Device::cpu, dt, {n, vp}, "dlogits");
    CrossEntropyArgs f{logits.t(), targets.t(), loss.t(), lse.t()};
    f.vocab = v;
    cross_entropy_forward(c, f);
    const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
    EXPECT_LT(rel_err(to_host_f64(c, loss.t()), ref.loss), tol);
    EXPECT_LT(rel_err(to_host_f64(c, lse.t()), ref.lse), tol);

    CrossEntropyBackwardArgs b{logits.t(), targets.t(), lse.t(), dlogits.t(), dloss, count};
    b.vocab = v;
    cross_entropy_backward(c, b);
    auto got = to_host_f64(c, dlogits.t());
    std::vector<double> classes(size_t(n * v));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < vp; ++j) {
        if (j < v) classes[size_t(i * v + j)] = got[size_t(i * vp + j)];
        else ASSERT_EQ(got[size_t(i * vp + j)], 0.0) << "padding column " << j << " of row " << i;
      }
    EXPECT_LT(rel_err(classes, ref.dlogits), dt == DType::f64 ? 1e-12 : 1e-5);

    b.dlogits = logits.t();  // in place over the padded logits: the same bits
    cross_entropy_backward(c, b);
    auto in_place = to_host_f64(c, logits.t());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(in_place[i], got[i]) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CrossEntropyCpu, ::testing::Values(DType::f64, DType::f32),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(CrossEntropy, MeanDividesByTheGivenCount) {
  Ctx& c = cpu_ctx();
  const int64_t n = 11;
  auto l = rand_uniform(size_t(n), 0.5, 9.0, 51);
  double sum = 0;
  for (double x : l) sum += x;
  Buffer loss = make_tensor(Device::cpu, DType::f64, {n}, l, "loss");
  Buffer out = make_poisoned(Device::cpu, DType::f64, {1}, "out");
  cross_entropy_mean(c, {loss.t(), out.t(), 7.0, false});
  EXPECT_NEAR(to_host_f64(c, out.t())[0], sum / 7.0, 1e-14);
  // Accumulating a second micro-batch normalised by a global count of 20.
  cross_entropy_mean(c, {loss.t(), out.t(), 20.0, true});
  EXPECT_NEAR(to_host_f64(c, out.t())[0], sum / 7.0 + sum / 20.0, 1e-14);
}

// d(mean loss · w)/dlogits by central differences, with valid_count larger than this call's
// valid rows (the global-count convention) and some rows ignored.
TEST(CrossEntropy, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t n = 5, v = 37;
  auto x = rand_normal(size_t(n * v), 1.5, 61);
  auto t = make_targets(n, v, 62, 3);
  const double count = double(valid_rows(t)) + 2, w = 1.3;
  Buffer logits(Device::cpu, DType::f64, {n, v}, "logits");
  Buffer targets = make_ids(Device::cpu, {n}, t, "targets");
  Buffer loss(Device::cpu, DType::f64, {n}, "loss"), lse(Device::cpu, DType::f64, {n}, "lse");
  Buffer mean(Device::cpu, DType::f64, {1}, "mean");
  auto objective = [&] {
    from_host_f64(c, logits.t(), x);
    cross_entropy_forward(c, {logits.t(), targets.t(), loss.t(), lse.t()});
    cross_entropy_mean(c, {loss.t(), mean.t(), count, false});
    return w * to_host_f64(c, mean.t())[0];
  };
  objective();
  Buffer dlogits = make_poisoned(Device::cpu, DType::f64, {n, v}, "dlogits");
  cross_entropy_backward(c, {logits.t(), targets.t(), lse.t(), dlogits.t(), w, count});
  auto analytic = to_host_f64(c, dlogits.t());
  const double err = fd_check(objective, {{"logits", x.data(), x.size(), &analytic}}, 1e-6, 185);
  record_fd_error("cross_entropy", err);
  EXPECT_LT(err, 1e-7);
}

// The same check over padded rows (vocab < row length): every element, padding included, is
// perturbed; the padding's finite differences are 0 and so must its analytic gradient be.
TEST(CrossEntropy, FiniteDifferencePaddedRows) {
  Ctx& c = cpu_ctx();
  const int64_t n = 4, v = 13, vp = 16;
  auto x = rand_normal(size_t(n * vp), 1.5, 63);
  auto t = make_targets(n, v, 64, 3);
  const double count = double(valid_rows(t)) + 1, w = 0.9;
  Buffer logits(Device::cpu, DType::f64, {n, vp}, "logits");
  Buffer targets = make_ids(Device::cpu, {n}, t, "targets");
  Buffer loss(Device::cpu, DType::f64, {n}, "loss"), lse(Device::cpu, DType::f64, {n}, "lse");
  Buffer mean(Device::cpu, DType::f64, {1}, "mean");
  auto objective = [&] {
    from_host_f64(c, logits.t(), x);
    CrossEntropyArgs f{logits.t(), targets.t(), loss.t(), lse.t()};
    f.vocab = v;
    cross_entropy_forward(c, f);
    cross_entropy_mean(c, {loss.t(), mean.t(), count, false});
    return w * to_host_f64(c, mean.t())[0];
  };
  objective();
  Buffer dlogits = make_poisoned(Device::cpu, DType::f64, {n, vp}, "dlogits");
  CrossEntropyBackwardArgs b{logits.t(), targets.t(), lse.t(), dlogits.t(), w, count};
  b.vocab = v;
  cross_entropy_backward(c, b);
  auto analytic = to_host_f64(c, dlogits.t());
  const double err = fd_check(objective, {{"logits", x.data(), x.size(), &analytic}}, 1e-6, size_t(n * vp));
  record_fd_error("cross_entropy_padded", err);
  EXPECT_LT(err, 1e-7);
}

TEST(CrossEntropy, RejectsBadVocab) {
  Ctx& c = cpu_ctx();
  const int64_t n = 2, vp = 8;
  Buffer logits = make_tensor(Device::cpu, DType::f64, {n, vp}, rand_uniform(size_t(n * vp), -1, 1, 73));
  Buffer loss(Device::cpu, DType::f64, {n}), lse(Device::cpu, DType::f64, {n});
  Buffer targets = make_ids(Device::cpu, {n}, {0, 5});
  for (int64_t bad : {int64_t(-1), vp + 1}) {
    CrossEntropyArgs f{logits.t(), targets.t(), loss.t(), lse.t()};
    f.vocab = bad;
    EXPECT_THROW(cross_entropy_forward(c, f), Error) << bad;
    CrossEntropyBackwardArgs b{logits.t(), targets.t(), lse.t(), logits.t(), 1.0, 1.0};
    b.vocab = bad;
    EXPECT_THROW(cross_entropy_backward(c, b), Error) << bad;
  }
  // Target 5 is a padding column when vocab = 5: not a class.
  CrossEntropyArgs f{logits.t(), targets.t(), loss.t(), lse.t()};
  f.vocab = 5;
  EXPECT_THROW(cross_entropy_forward(c, f), Error);
  f.vocab = 6;
  EXPECT_NO_THROW(cross_entropy_forward(c, f));
}

TEST(CrossEntropy, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  const int64_t n = 3, v = 7;
  Buffer logits = make_tensor(Device::cpu, DType::f32, {n, v}, rand_uniform(size_t(n * v), -1, 1, 71));
  Buffer loss(Device::cpu, DType::f32, {n}), lse(Device::cpu, DType::f32, {n});
  for (int32_t bad : {7, -1, -99, -101, 1000}) {
    Buffer targets = make_ids(Device::cpu, {n}, {0, bad, 2});
    EXPECT_THROW(cross_entropy_forward(c, {logits.t(), targets.t(), loss.t(), lse.t()}), Error) << bad;
    EXPECT_THROW(cross_entropy_backward(c, {logits.t(), targets.t(), lse.t(), logits.t(), 1.0, 2.0}), Error)
        << bad;
  }
  Buffer targets = make_ids(Device::cpu, {n}, {0, kIgnoreIndex, 6});
  Buffer lse64(Device::cpu, DType::f64, {n});
  EXPECT_THROW(cross_entropy_forward(c, {logits.t(), targets.t(), loss.t(), lse64.t()}), Error);
  EXPECT_THROW(cross_entropy_backward(c, {logits.t(), targets.t(), lse.t(), logits.t(), 1.0, 0.0}), Error);
  Buffer out(Device::cpu, DType::f32, {1});
  EXPECT_THROW(cross_entropy_mean(c, {loss.t(), out.t(), 0.0, false}), Error);
  Buffer short_targets = make_ids(Device::cpu, {n - 1}, {0, 1});
  EXPECT_THROW(cross_entropy_forward(c, {logits.t(), short_targets.t(), loss.t(), lse.t()}), Error);
}

}  // namespace
}  // namespace attnlab::test
