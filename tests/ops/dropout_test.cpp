#include "core/ops/dropout.h"

#include <cmath>

#include "core/rng.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {

// Inputs bounded away from zero, so a dropped element is the only way to get 0.
std::vector<double> nonzero_values(size_t n, uint64_t seed) {
  auto mag = rand_uniform(n, 0.5, 1.5, seed), sign = rand_uniform(n, -1, 1, seed + 1);
  for (size_t i = 0; i < n; ++i) mag[i] = sign[i] < 0 ? -mag[i] : mag[i];
  return mag;
}

}  // namespace

TEST(Dropout, MaskIsPhiloxUniformAtLeastP) {
  Ctx c = Ctx::make_cpu(777);
  const int64_t n = 20011;
  const double p = 0.3;
  auto x = nonzero_values(n, 101);
  for (DType dt : {DType::f64, DType::f32}) {
    const uint64_t offset = c.take_rng(uint64_t(n));
    Buffer tx = make_tensor(Device::cpu, dt, {n}, x), ty = make_poisoned(Device::cpu, dt, {n});
    dropout_forward(c, {ty.t(), tx.t(), p, offset});
    auto y = to_host_f64(c, ty.t()), xr = round_as(dt, x);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = philox_uniform(777, offset, uint64_t(i)) >= p;  // the definition
      kept += keep;
      if (keep)
        ASSERT_NEAR(y[i], xr[i] / (1.0 - p), (dt == DType::f64 ? 1e-15 : 1e-6) * std::fabs(y[i])) << i;
      else
        ASSERT_EQ(y[i], 0.0) << i;
    }
    // Bernoulli(1 − p): the kept count lies within 6 standard deviations of its mean.
    const double mean = n * (1 - p), sd = std::sqrt(n * p * (1 - p));
    EXPECT_LT(std::fabs(kept - mean), 6 * sd) << kept;
  }
}

TEST(Dropout, BackwardRegeneratesTheSameMaskAndOffsetsDiffer) {
  Ctx c = Ctx::make_cpu(99);
  const int64_t n = 4099;
  const double p = 0.5;
  auto x = nonzero_values(n, 102), g = nonzero_values(n, 103);
  const uint64_t off1 = c.take_rng(uint64_t(n)), off2 = c.take_rng(uint64_t(n));
  Buffer tx = make_tensor(Device::cpu, DType::f64, {n}, x), ty = make_poisoned(Device::cpu, DType::f64, {n});
  Buffer tg = make_tensor(Device::cpu, DType::f64, {n}, g), tdx = make_poisoned(Device::cpu, DType::f64, {n});
  dropout_forward(c, {ty.t(), tx.t(), p, off1});
  dropout_backward(c, {tdx.t(), tg.t(), p, off1});
  auto y = to_host_f64(c, ty.t()), dx = to_host_f64(c, tdx.t());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i] == 0.0, dx[i] == 0.0) << i;
  // Another offset draws another mask.
  Buffer ty2 = make_poisoned(Device::cpu, DType::f64, {n});
  dropout_forward(c, {ty2.t(), tx.t(), p, off2});
  auto y2 = to_host_f64(c, ty2.t());
  int64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) differ += (y[i] == 0.0) != (y2[i] == 0.0);
  EXPECT_GT(differ, n / 4);  // independent masks at p = 0.5 differ in about half the places
  // In place: the same storage for input and output.
  Buffer tin = make_tensor(Device::cpu, DType::f64, {n}, x);
  dropout_forward(c, {tin.t(), tin.t(), p, off1});
  EXPECT_EQ(to_host_f64(c, tin.t()), y);
}

TEST(Dropout, ZeroProbabilityIsTheIdentity) {
  Ctx c = Ctx::make_cpu(5);
  const int64_t n = 1031;
  auto x = nonzero_values(n, 104);
  Buffer tx = make_tensor(Device::cpu, DType::f32, {n}, x), ty = make_poisoned(Device::cpu, DType::f32, {n});
  dropout_forward(c, {ty.t(), tx.t(), 0.0, c.take_rng(n)});
  EXPECT_EQ(to_host_f64(c, ty.t()), round_as(DType::f32, x));
}

TEST(Dropout, FiniteDifference) {
  Ctx c = Ctx::make_cpu(31);
  const int64_t n = 257;
  const double p = 0.25;
  const uint64_t offset = c.take_rng(n);
  auto x = nonzero_values(n, 105), R = rand_uniform(n, -1, 1, 106);
  Buffer tx(Device::cpu, DType::f64, {n}), ty(Device::cpu, DType::f64, {n});
  auto loss = [&] {
    from_host_f64(c, tx.t(), x);
    dropout_forward(c, {ty.t(), tx.t(), p, offset});
    auto y = to_host_f64(c, ty.t());
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += R[i] * y[i];
    return l;
  };
  Buffer tg = make_tensor(Device::cpu, DType::f64, {n}, R), tdx = make_poisoned(Device::cpu, DType::f64, {n});
  dropout_backward(c, {tdx.t(), tg.t(), p, offset});
  auto gx = to_host_f64(c, tdx.t());
  std::string report;
  double err = fd_check(loss, {{"x", x.data(), x.size(), &gx}}, 1e-6, 128, &report);
  record_fd_error("dropout", err);
  EXPECT_LT(err, 1e-7) << report;  // linear in x: only the rounding of the central difference
}

TEST(Dropout, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  Buffer x = make_tensor(Device::cpu, DType::f32, {8}, nonzero_values(8, 107));
  Buffer y(Device::cpu, DType::f32, {8}), y_bad(Device::cpu, DType::f32, {9}), y64(Device::cpu, DType::f64, {8});
  EXPECT_THROW(dropout_forward(c, {y.t(), x.t(), 1.0, 0}), Error);
  EXPECT_THROW(dropout_forward(c, {y.t(), x.t(), -0.1, 0}), Error);
  EXPECT_THROW(dropout_forward(c, {y_bad.t(), x.t(), 0.1, 0}), Error);
  EXPECT_THROW(dropout_forward(c, {y64.t(), x.t(), 0.1, 0}), Error);
  EXPECT_THROW(dropout_backward(c, {y.t(), x.t(), 1.5, 0}), Error);
}

}  // namespace attnlab::test
