#include "core/ops/residual.h"
#include "support/testing.h"

namespace attnlab::test {

TEST(Residual, ForwardAddsAndBackwardAccumulates) {
  Ctx& c = cpu_ctx();
  const int64_t n = 1031;
  auto a = rand_uniform(n, -2, 2, 1), b = rand_uniform(n, -2, 2, 2), g = rand_uniform(n, -1, 1, 3);
  auto da0 = rand_uniform(n, -1, 1, 4);
  Buffer ta = make_tensor(Device::cpu, DType::f64, {n}, a), tb = make_tensor(Device::cpu, DType::f64, {n}, b);
  Buffer to = make_poisoned(Device::cpu, DType::f64, {n});
  residual_forward(c, {to.t(), ta.t(), tb.t()});
  auto out = to_host_f64(c, to.t());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] + b[i]) << i;

  Buffer tg = make_tensor(Device::cpu, DType::f64, {n}, g), tda = make_tensor(Device::cpu, DType::f64, {n}, da0);
  residual_backward(c, {tg.t(), tda.t(), Tensor{}});
  auto da = to_host_f64(c, tda.t());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(da[i], da0[i] + g[i]) << i;
}

TEST(Residual, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t n = 37;
  auto a = rand_uniform(n, -2, 2, 5), b = rand_uniform(n, -2, 2, 6), w = rand_uniform(n, -1, 1, 7);
  Buffer ta(Device::cpu, DType::f64, {n}), tb(Device::cpu, DType::f64, {n}), to(Device::cpu, DType::f64, {n});
  auto loss = [&] {
    from_host_f64(c, ta.t(), a);
    from_host_f64(c, tb.t(), b);
    residual_forward(c, {to.t(), ta.t(), tb.t()});
    auto o = to_host_f64(c, to.t());
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += w[i] * o[i];
    return l;
  };
  Buffer tw = make_tensor(Device::cpu, DType::f64, {n}, w);
  Buffer da = make_tensor(Device::cpu, DType::f64, {n}, std::vector<double>(n, 0.0));
  Buffer db = make_tensor(Device::cpu, DType::f64, {n}, std::vector<double>(n, 0.0));
  residual_backward(c, {tw.t(), da.t(), db.t()});
  auto ga = to_host_f64(c, da.t()), gb = to_host_f64(c, db.t());
  double err = fd_check(loss, {{"a", a.data(), a.size(), &ga}, {"b", b.data(), b.size(), &gb}});
  record_fd_error("residual", err);
  EXPECT_LT(err, 1e-8);
}

TEST(Residual, RejectsMismatchedShapes) {
  Buffer a(Device::cpu, DType::f32, {5}), b(Device::cpu, DType::f32, {6}), o(Device::cpu, DType::f32, {5});
  EXPECT_THROW(residual_forward(cpu_ctx(), {o.t(), a.t(), b.t()}), Error);
}

}  // namespace attnlab::test
