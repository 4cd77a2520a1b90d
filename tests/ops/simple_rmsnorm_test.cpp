// SimpleRMSNorm (METHODS §3.5): forward against the formula evaluated here, and the backward
// against finite differences in double (x and the scale s), including accumulate_dx.
#include <cmath>

#include "core/ops/simple_rmsnorm.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

TEST(SimpleRmsNorm, ForwardMatchesTheFormulaWithEpsOutsideTheRoot) {
  Ctx& ctx = cpu_ctx();
  const int64_t rows = 3, C = 5;
  // Row 1 is tiny so eps (outside the root) visibly changes the result; row 2 is zero.
  std::vector<double> x = rand_uniform(rows * C, -2, 2, 1);
  for (int64_t c = 0; c < C; ++c) x[size_t(C + c)] *= 1e-8, x[size_t(2 * C + c)] = 0;
  const auto w = rand_uniform(C, 0.5, 1.5, 2);
  const double eps = 1e-8;
  for (DType dt : {DType::f64, DType::f32}) {
    Buffer tx = make_tensor(Device::cpu, dt, {rows, C}, x), tw = make_tensor(Device::cpu, dt, {C}, w);
    Buffer ty = make_poisoned(Device::cpu, dt, {rows, C}), td = make_poisoned(Device::cpu, acc_dtype(dt), {rows});
    simple_rmsnorm_forward(ctx, {ty, td, tx, tw, eps});
    const auto xr = round_as(dt, x), wr = round_as(dt, w);
    const auto y = to_host_f64(ctx, ty), den = to_host_f64(ctx, td);
    for (int64_t r = 0; r < rows; ++r) {
      double sq = 0;
      for (int64_t c = 0; c < C; ++c) sq += xr[size_t(r * C + c)] * xr[size_t(r * C + c)];
      const double d = std::sqrt(sq / C) + eps;
      const double tol = dt == DType::f64 ? 1e-14 : 1e-6;
      EXPECT_NEAR(den[size_t(r)], d, tol * d) << dtype_name(dt) << " row " << r;
      for (int64_t c = 0; c < C; ++c) {
        const double want = wr[size_t(c)] * xr[size_t(r * C + c)] / d;
        EXPECT_NEAR(y[size_t(r * C + c)], want, tol * (std::fabs(want) + 1e-30) + 1e-300) << dtype_name(dt);
      }
    }
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(y[size_t(2 * C + c)], 0.0) << "a zero row stays zero";
  }
}

TEST(SimpleRmsNorm, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = cpu_ctx();
  const int64_t rows = 4, C = 7;
  std::vector<double> x = rand_uniform(rows * C, -2, 3, 5), w = rand_uniform(C, 0.5, 1.5, 6);
  const auto gy = rand_uniform(rows * C, -1, 1, 7), dx0 = rand_uniform(rows * C, -1, 1, 8);
  const auto dw0 = rand_uniform(C, -1, 1, 9);
  Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), tw = make_tensor(Device::cpu, DType::f64, {C}, w);
  Buffer ty(Device::cpu, DType::f64, {rows, C}), td(Device::cpu, DType::f64, {rows});
  auto loss = [&] {
    simple_rmsnorm_forward(ctx, {ty, td, tx, tw, 1e-8});
    const auto y = to_host_f64(ctx, ty);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += gy[i] * y[i];
    return s;
  };
  loss();
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, gy);
  Buffer tdx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0), tdw = make_tensor(Device::cpu, DType::f64, {C}, dw0);
  SimpleRmsNormBackwardArgs a;
  a.dx = tdx;
  a.dweight = tdw;
  a.dy = tdy;
  a.x = tx;
  a.weight = tw;
  a.den = td;
  a.accumulate_dx = true;
  simple_rmsnorm_backward(ctx, a);
  auto dx = to_host_f64(ctx, tdx), dw = to_host_f64(ctx, tdw);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];  // accumulate_dx added onto dx0
  for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];   // dweight accumulates
  const double err = fd_check(loss, {{"x", tx.t().ptr<double>(), size_t(rows * C), &dx},
                                     {"s", tw.t().ptr<double>(), size_t(C), &dw}},
                              1e-6, 64);
  record_fd_error("simple_rmsnorm", err);
  EXPECT_LT(err, 1e-7);
}

TEST(SimpleRmsNorm, RejectsMismatchedShapesAndZeroEps) {
  Ctx& ctx = cpu_ctx();
  Buffer tx = make_tensor(Device::cpu, DType::f64, {2, 3}, rand_uniform(6, -1, 1, 1));
  Buffer tw = make_tensor(Device::cpu, DType::f64, {4}, rand_uniform(4, -1, 1, 2));
  Buffer tw3 = make_tensor(Device::cpu, DType::f64, {3}, rand_uniform(3, -1, 1, 2));
  Buffer ty(Device::cpu, DType::f64, {2, 3}), td(Device::cpu, DType::f64, {2});
  EXPECT_THROW(simple_rmsnorm_forward(ctx, {ty, td, tx, tw, 1e-8}), Error);
  EXPECT_THROW(simple_rmsnorm_forward(ctx, {ty, td, tx, tw3, 0.0}), Error);
  EXPECT_NO_THROW(simple_rmsnorm_forward(ctx, {ty, td, tx, tw3, 1e-8}));
}

}  // namespace
}  // namespace attnlab::test
