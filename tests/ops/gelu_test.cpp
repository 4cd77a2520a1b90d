#include "core/ops/gelu.h"

#include <cmath>

#include "support/testing.h"

namespace attnlab::test {
namespace {

std::vector<double> run_forward(GeluKind kind, DType dt, const std::vector<double>& x) {
  const int64_t n = int64_t(x.size());
  Buffer tx = make_tensor(Device::cpu, dt, {n}, x), ty = make_poisoned(Device::cpu, dt, {n});
  gelu_forward(cpu_ctx(), {ty.t(), tx.t(), kind});
  return to_host_f64(cpu_ctx(), ty.t());
}
std::vector<double> run_backward(GeluKind kind, DType dt, const std::vector<double>& x,
                                 const std::vector<double>& dy) {
  const int64_t n = int64_t(x.size());
  Buffer tx = make_tensor(Device::cpu, dt, {n}, x), tdy = make_tensor(Device::cpu, dt, {n}, dy);
  Buffer tdx = make_poisoned(Device::cpu, dt, {n});
  gelu_backward(cpu_ctx(), {tdx.t(), tdy.t(), tx.t(), kind});
  return to_host_f64(cpu_ctx(), tdx.t());
}

}  // namespace

// The exact form through erfc (a different libm path than the op's erf): x·½·erfc(−x/√2).
TEST(Gelu, ExactMatchesErfcFormula) {
  auto x = rand_uniform(997, -7, 7, 11);
  auto y = run_forward(GeluKind::erf_exact, DType::f64, x);
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = x[i] * 0.5 * std::erfc(-x[i] / std::sqrt(2.0));
    ASSERT_NEAR(y[i], ref, 1e-14 * std::max(1.0, std::fabs(ref))) << "x=" << x[i];
  }
}

// GPT-2's formula written out as in HF's NewGELUActivation.
TEST(Gelu, TanhMatchesGpt2Formula) {
  auto x = rand_uniform(997, -7, 7, 12);
  auto y = run_forward(GeluKind::tanh_approx, DType::f64, x);
  const double pi = std::acos(-1.0);
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = 0.5 * x[i] * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x[i] + 0.044715 * std::pow(x[i], 3.0))));
    ASSERT_NEAR(y[i], ref, 1e-14 * std::max(1.0, std::fabs(ref))) << "x=" << x[i];
  }
}

// Both forms satisfy gelu(x) − gelu(−x) = x (Φ(x) + Φ(−x) = 1; tanh is odd), and they differ
// from each other by less than 5e-4 (the known worst gap, near |x| ≈ 2) but not by nothing.
TEST(Gelu, OddPartIsIdentityAndFormsAreClose) {
  auto x = rand_uniform(513, -6, 6, 13);
  std::vector<double> neg(x.size());
  for (size_t i = 0; i < x.size(); ++i) neg[i] = -x[i];
  for (GeluKind k : {GeluKind::erf_exact, GeluKind::tanh_approx}) {
    auto yp = run_forward(k, DType::f64, x), yn = run_forward(k, DType::f64, neg);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(yp[i] - yn[i], x[i], 1e-13) << gelu_kind_name(k);
  }
  auto ye = run_forward(GeluKind::erf_exact, DType::f64, x), yt = run_forward(GeluKind::tanh_approx, DType::f64, x);
  double worst = max_abs_diff(ye, yt);
  EXPECT_LT(worst, 5e-4);
  EXPECT_GT(worst, 1e-5);
}

TEST(Gelu, FloatMatchesDouble) {
  auto x = round_as(DType::f32, rand_uniform(1031, -5, 5, 14));
  auto dy = round_as(DType::f32, rand_uniform(1031, -1, 1, 15));
  for (GeluKind k : {GeluKind::erf_exact, GeluKind::tanh_approx}) {
    EXPECT_LT(rel_err(run_forward(k, DType::f32, x), run_forward(k, DType::f64, x)), 1e-6) << gelu_kind_name(k);
    EXPECT_LT(rel_err(run_backward(k, DType::f32, x, dy), run_backward(k, DType::f64, x, dy)), 1e-6)
        << gelu_kind_name(k);
  }
}

TEST(Gelu, InPlace) {
  auto x = rand_uniform(300, -4, 4, 16), dy = rand_uniform(300, -1, 1, 17);
  for (GeluKind k : {GeluKind::erf_exact, GeluKind::tanh_approx}) {
    Buffer t = make_tensor(Device::cpu, DType::f64, {300}, x);
    gelu_forward(cpu_ctx(), {t.t(), t.t(), k});
    EXPECT_EQ(to_host_f64(cpu_ctx(), t.t()), run_forward(k, DType::f64, x));
    Buffer tx = make_tensor(Device::cpu, DType::f64, {300}, x), g = make_tensor(Device::cpu, DType::f64, {300}, dy);
    gelu_backward(cpu_ctx(), {g.t(), g.t(), tx.t(), k});
    EXPECT_EQ(to_host_f64(cpu_ctx(), g.t()), run_backward(k, DType::f64, x, dy));
  }
}

TEST(Gelu, FiniteDifference) {
  const int64_t n = 61;
  double worst = 0;
  for (GeluKind k : {GeluKind::erf_exact, GeluKind::tanh_approx}) {
    auto x = rand_uniform(n, -4, 4, 18), w = rand_uniform(n, -1, 1, 19);
    Buffer tx(Device::cpu, DType::f64, {n}), ty(Device::cpu, DType::f64, {n});
    auto loss = [&] {
      from_host_f64(cpu_ctx(), tx.t(), x);
      gelu_forward(cpu_ctx(), {ty.t(), tx.t(), k});
      auto y = to_host_f64(cpu_ctx(), ty.t());
      double l = 0;
      for (int64_t i = 0; i < n; ++i) l += w[size_t(i)] * y[size_t(i)];
      return l;
    };
    auto gx = run_backward(k, DType::f64, x, w);
    double err = fd_check(loss, {{"x", x.data(), x.size(), &gx}});
    EXPECT_LT(err, 1e-8) << gelu_kind_name(k);
    worst = std::max(worst, err);
  }
  record_fd_error("gelu", worst);
}

TEST(Gelu, RejectsBadInputs) {
  Buffer a(Device::cpu, DType::f32, {5}), b(Device::cpu, DType::f32, {6}), d(Device::cpu, DType::f64, {5});
  EXPECT_THROW(gelu_forward(cpu_ctx(), {a.t(), b.t(), GeluKind::erf_exact}), Error);
  EXPECT_THROW(gelu_forward(cpu_ctx(), {a.t(), d.t(), GeluKind::erf_exact}), Error);
  EXPECT_THROW(gelu_backward(cpu_ctx(), {a.t(), a.t(), b.t(), GeluKind::tanh_approx}), Error);
  EXPECT_THROW(gelu_forward(cpu_ctx(), {a.t(), Tensor{}, GeluKind::erf_exact}), Error);
  Buffer h(Device::cpu, DType::bf16, {5});
  EXPECT_THROW(gelu_forward(cpu_ctx(), {h.t(), h.t(), GeluKind::erf_exact}), Error);
}

}  // namespace attnlab::test
