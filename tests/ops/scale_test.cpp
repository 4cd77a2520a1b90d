#include <cmath>

#include "core/ops/scale.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {
// 1 − λ_init of layer 1 and √D of D = 37: scalars that float cannot hold.
const double kAlpha = 1.0 - (0.8 - 0.6 * std::exp(-0.3));
const double kBeta = std::sqrt(37.0);
}  // namespace

// f64: y = α·x + β·y per element, with the double scalars; β = 0 over a NaN-poisoned y writes
// every element without reading it.
TEST(Scale, F64ForwardIsAlphaXPlusBetaY) {
  Ctx& c = cpu_ctx();
  for (int64_t n : {1, 7, 1031}) {
    auto x = rand_uniform(size_t(n), -2, 2, uint64_t(n)), y0 = rand_uniform(size_t(n), -2, 2, uint64_t(n) + 1);
    Buffer tx = make_tensor(Device::cpu, DType::f64, {n}, x, "x");
    Buffer ty = make_tensor(Device::cpu, DType::f64, {n}, y0, "y");
    scale_forward(c, {ty.t(), tx.t(), kAlpha, kBeta});
    auto got = to_host_f64(c, ty.t());
    for (int64_t i = 0; i < n; ++i) {
      const double want = kAlpha * x[size_t(i)] + kBeta * y0[size_t(i)];
      ASSERT_NEAR(got[size_t(i)], want, 4e-16 * (std::abs(kAlpha * x[size_t(i)]) + std::abs(kBeta * y0[size_t(i)])))
          << "n=" << n << " i=" << i;
    }

    Buffer tp = make_poisoned(Device::cpu, DType::f64, {n}, "y");
    scale_forward(c, {tp.t(), tx.t(), kAlpha, 0.0});
    got = to_host_f64(c, tp.t());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[size_t(i)], kAlpha * x[size_t(i)]) << "n=" << n << " i=" << i;
  }
}

// f32 rounds α and β to float and computes in float: within float precision of the double
// reference on rounded inputs.
TEST(Scale, F32MatchesDoubleReference) {
  Ctx& c = cpu_ctx();
  const int64_t n = 4099;
  auto x = round_as(DType::f32, rand_uniform(size_t(n), -3, 3, 11));
  auto y0 = round_as(DType::f32, rand_uniform(size_t(n), -3, 3, 12));
  Buffer tx = make_tensor(Device::cpu, DType::f32, {n}, x), ty = make_tensor(Device::cpu, DType::f32, {n}, y0);
  scale_forward(c, {ty.t(), tx.t(), kAlpha, -kBeta});
  std::vector<double> ref(static_cast<size_t>(n));
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = kAlpha * x[i] - kBeta * y0[i];
  EXPECT_LT(rel_err(to_host_f64(c, ty.t()), ref), 1e-6);
}

// x and y the same tensor: y = (α + β)·y, each element read before it is written.
TEST(Scale, InPlace) {
  Ctx& c = cpu_ctx();
  const int64_t n = 257;
  auto v = rand_uniform(size_t(n), -1, 1, 21);
  Buffer t = make_tensor(Device::cpu, DType::f64, {n}, v);
  scale_forward(c, {t.t(), t.t(), kAlpha, 0.0});
  auto got = to_host_f64(c, t.t());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[size_t(i)], kAlpha * v[size_t(i)]) << i;
  scale_forward(c, {t.t(), t.t(), 2.0, 0.5});
  auto got2 = to_host_f64(c, t.t());
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got2[size_t(i)], 2.5 * got[size_t(i)], 1e-15) << i;
}

// Backward overwrites dx with α·dy, or adds it with accumulate_dx.
TEST(Scale, BackwardOverwritesOrAccumulates) {
  Ctx& c = cpu_ctx();
  const int64_t n = 263;
  auto dy = rand_uniform(size_t(n), -1, 1, 31), dx0 = rand_uniform(size_t(n), -1, 1, 32);
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {n}, dy);
  Buffer tdx = make_poisoned(Device::cpu, DType::f64, {n});
  scale_backward(c, {tdx.t(), tdy.t(), kAlpha, false});
  auto got = to_host_f64(c, tdx.t());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[size_t(i)], kAlpha * dy[size_t(i)]) << i;
  Buffer tacc = make_tensor(Device::cpu, DType::f64, {n}, dx0);
  scale_backward(c, {tacc.t(), tdy.t(), kAlpha, true});
  got = to_host_f64(c, tacc.t());
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(got[size_t(i)], dx0[size_t(i)] + kAlpha * dy[size_t(i)], 1e-15) << i;
}

// L = Σ w ⊙ (α·x + β·y): dL/dx from scale_backward(α), dL/dy from scale_backward(β) (the old
// y's gradient is β·dy, the same op), against central differences in double.
TEST(Scale, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t n = 37;
  auto x = rand_uniform(size_t(n), -2, 2, 41), y = rand_uniform(size_t(n), -2, 2, 42);
  auto w = rand_uniform(size_t(n), -1, 1, 43);
  Buffer tx(Device::cpu, DType::f64, {n}), ty(Device::cpu, DType::f64, {n});
  auto loss = [&] {
    from_host_f64(c, tx.t(), x);
    from_host_f64(c, ty.t(), y);
    scale_forward(c, {ty.t(), tx.t(), kAlpha, kBeta});
    auto o = to_host_f64(c, ty.t());
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += w[size_t(i)] * o[size_t(i)];
    return l;
  };
  Buffer tw = make_tensor(Device::cpu, DType::f64, {n}, w);
  Buffer dx = make_poisoned(Device::cpu, DType::f64, {n}), dy = make_poisoned(Device::cpu, DType::f64, {n});
  scale_backward(c, {dx.t(), tw.t(), kAlpha, false});
  scale_backward(c, {dy.t(), tw.t(), kBeta, false});
  auto gx = to_host_f64(c, dx.t()), gy = to_host_f64(c, dy.t());
  const double err = fd_check(loss, {{"x", x.data(), x.size(), &gx}, {"y", y.data(), y.size(), &gy}});
  record_fd_error("scale", err);
  EXPECT_LT(err, 1e-8);
}

TEST(Scale, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  Buffer a(Device::cpu, DType::f32, {5}), b(Device::cpu, DType::f32, {6}), d(Device::cpu, DType::f64, {5});
  EXPECT_THROW(scale_forward(c, {a.t(), b.t(), 2.0, 0.0}), Error);  // sizes differ
  EXPECT_THROW(scale_forward(c, {a.t(), d.t(), 2.0, 0.0}), Error);  // dtypes differ
  EXPECT_THROW(scale_forward(c, {a.t(), Tensor{}, 2.0, 0.0}), Error);
  EXPECT_THROW(scale_forward(c, {a.t(), a.t(), NAN, 0.0}), Error);
  Buffer big(Device::cpu, DType::f32, {8});
  Tensor lo = big.t().slice0(0, 5), hi = big.t().slice0(3, 8);  // overlapping, not the same
  EXPECT_THROW(scale_forward(c, {lo, hi, 2.0, 0.0}), Error);
  EXPECT_THROW(scale_backward(c, {a.t(), b.t(), 2.0, false}), Error);
}

}  // namespace attnlab::test
