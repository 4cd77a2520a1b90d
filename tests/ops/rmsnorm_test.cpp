#include "core/ops/rmsnorm.h"

#include <cmath>

#include "support/testing.h"

namespace attnlab::test {

namespace {

// y = w ⊙ x / sqrt(mean(x²) + eps), row by row, from the definition.
std::vector<double> rms_reference(const std::vector<double>& x, const std::vector<double>* w, int64_t rows, int64_t C,
                                  double eps, std::vector<double>* rstd = nullptr) {
  std::vector<double> y(x.size());
  if (rstd) rstd->assign(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double q = 0;
    for (int64_t c = 0; c < C; ++c) q += x[r * C + c] * x[r * C + c];
    const double rs = 1.0 / std::sqrt(q / C + eps);
    if (rstd) (*rstd)[r] = rs;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = x[r * C + c] * rs * (w ? (*w)[c] : 1.0);
  }
  return y;
}

}  // namespace

TEST(RmsNorm, ForwardMatchesFormula) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 7, C = 31;
  const double eps = 1e-6;
  auto x = rand_uniform(rows * C, -3, 2, 51), w = rand_uniform(C, 0.5, 1.5, 52);
  for (DType dt : {DType::f64, DType::f32}) {
    auto xr = round_as(dt, x), wr = round_as(dt, w);
    Buffer tx = make_tensor(Device::cpu, dt, {rows, C}, xr), tw = make_tensor(Device::cpu, dt, {C}, wr);
    Buffer ty = make_poisoned(Device::cpu, dt, {rows, C}), tr = make_poisoned(Device::cpu, acc_dtype(dt), {rows});
    rmsnorm_forward(c, {ty.t(), tr.t(), tx.t(), tw.t(), eps});
    std::vector<double> ref_rstd;
    auto ref = rms_reference(xr, &wr, rows, C, eps, &ref_rstd);
    const double tol = dt == DType::f64 ? 1e-14 : 1e-6;
    EXPECT_LT(rel_err(to_host_f64(c, ty.t()), ref), tol) << dtype_name(dt);
    EXPECT_LT(rel_err(to_host_f64(c, tr.t()), ref_rstd), tol) << dtype_name(dt);
  }
}

TEST(RmsNorm, UnitWeightRowsHaveUnitRootMeanSquare) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 5, C = 64;
  const double eps = 1e-6;
  auto x = rand_uniform(rows * C, 0.5, 4, 53);
  Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x);
  Buffer ty = make_poisoned(Device::cpu, DType::f64, {rows, C}), tr = make_poisoned(Device::cpu, DType::f64, {rows});
  rmsnorm_forward(c, {ty.t(), tr.t(), tx.t(), Tensor{}, eps});
  auto y = to_host_f64(c, ty.t());
  for (int64_t r = 0; r < rows; ++r) {
    double q = 0, xq = 0;
    for (int64_t cc = 0; cc < C; ++cc) {
      q += y[r * C + cc] * y[r * C + cc];
      xq += x[r * C + cc] * x[r * C + cc];
    }
    EXPECT_NEAR(q / C, (xq / C) / (xq / C + eps), 1e-13) << r;  // 1 up to eps
  }
}

TEST(RmsNorm, PerHeadSharesTheWeightAcrossHeadsAndPositions) {
  // Qwen3 q_norm: q [B, T, H, d] normalised over d with one [d] weight.
  Ctx& c = cpu_ctx();
  const int64_t B = 2, T = 3, H = 5, d = 8, rows = B * T * H;
  auto q = rand_uniform(rows * d, -2, 2, 54), w = rand_uniform(d, 0.5, 1.5, 55);
  Buffer tq = make_tensor(Device::cpu, DType::f64, {B, T, H, d}, q), tw = make_tensor(Device::cpu, DType::f64, {d}, w);
  Buffer ty = make_poisoned(Device::cpu, DType::f64, {B, T, H, d}), tr = make_poisoned(Device::cpu, DType::f64, {rows});
  rmsnorm_forward(c, {ty.t(), tr.t(), tq.t(), tw.t(), 1e-6});
  EXPECT_LT(rel_err(to_host_f64(c, ty.t()), rms_reference(q, &w, rows, d, 1e-6)), 1e-14);
}

TEST(RmsNorm, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 6, C = 11;
  auto x = rand_uniform(rows * C, -2, 2, 61), w = rand_uniform(C, 0.5, 1.5, 62), R = rand_uniform(rows * C, -1, 1, 63);
  Buffer tx(Device::cpu, DType::f64, {rows, C}), tw(Device::cpu, DType::f64, {C});
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tr(Device::cpu, DType::f64, {rows});
  auto loss = [&] {
    from_host_f64(c, tx.t(), x);
    from_host_f64(c, tw.t(), w);
    rmsnorm_forward(c, {ty.t(), tr.t(), tx.t(), tw.t(), 1e-6});
    auto y = to_host_f64(c, ty.t());
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += R[i] * y[i];
    return l;
  };
  loss();
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, R);
  Buffer tdx = make_poisoned(Device::cpu, DType::f64, {rows, C});
  Buffer tdw = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  rmsnorm_backward(c, {tdx.t(), tdw.t(), tdy.t(), tx.t(), tw.t(), tr.t()});
  auto gx = to_host_f64(c, tdx.t()), gw = to_host_f64(c, tdw.t());
  std::string report;
  double err = fd_check(loss, {{"x", x.data(), x.size(), &gx}, {"w", w.data(), w.size(), &gw}}, 1e-6, 64, &report);
  record_fd_error("rmsnorm", err);
  EXPECT_LT(err, 1e-7) << report;
}

TEST(RmsNorm, BackwardAccumulatesAndSkipsFrozen) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 4, C = 23;
  auto x = rand_uniform(rows * C, -2, 2, 71), w = rand_uniform(C, 0.5, 1.5, 72), dy = rand_uniform(rows * C, -1, 1, 73);
  auto dx0 = rand_uniform(rows * C, -1, 1, 74), dw0 = rand_uniform(C, -1, 1, 75);
  Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), tw = make_tensor(Device::cpu, DType::f64, {C}, w);
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tr(Device::cpu, DType::f64, {rows});
  rmsnorm_forward(c, {ty.t(), tr.t(), tx.t(), tw.t(), 1e-6});
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);
  Buffer rdx = make_poisoned(Device::cpu, DType::f64, {rows, C});
  Buffer rdw = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  rmsnorm_backward(c, {rdx.t(), rdw.t(), tdy.t(), tx.t(), tw.t(), tr.t()});
  auto ref_dx = to_host_f64(c, rdx.t()), ref_dw = to_host_f64(c, rdw.t());
  // dw = Σ_rows dy ⊙ x̂, straight from the definition.
  std::vector<double> rstd;
  auto xhat = rms_reference(x, nullptr, rows, C, 1e-6, &rstd);
  for (int64_t cc = 0; cc < C; ++cc) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * C + cc] * xhat[r * C + cc];
    ASSERT_NEAR(ref_dw[cc], s, 1e-13) << cc;
  }
  Buffer adx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0),
         adw = make_tensor(Device::cpu, DType::f64, {C}, dw0);
  RmsNormBackwardArgs a{adx.t(), adw.t(), tdy.t(), tx.t(), tw.t(), tr.t()};
  a.accumulate_dx = true;
  rmsnorm_backward(c, a);
  auto gdx = to_host_f64(c, adx.t()), gdw = to_host_f64(c, adw.t());
  for (int64_t i = 0; i < rows * C; ++i) ASSERT_NEAR(gdx[i], dx0[i] + ref_dx[i], 1e-14) << i;
  for (int64_t i = 0; i < C; ++i) ASSERT_NEAR(gdw[i], dw0[i] + ref_dw[i], 1e-13) << i;
  Buffer fdx = make_poisoned(Device::cpu, DType::f64, {rows, C});
  rmsnorm_backward(c, {fdx.t(), Tensor{}, tdy.t(), tx.t(), tw.t(), tr.t()});
  EXPECT_EQ(to_host_f64(c, fdx.t()), ref_dx);
}

TEST(RmsNorm, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  Buffer x(Device::cpu, DType::f32, {4, 8}), y(Device::cpu, DType::f32, {4, 8}), y_bad(Device::cpu, DType::f32, {4, 9});
  Buffer r(Device::cpu, DType::f32, {4}), r_bad(Device::cpu, DType::f32, {5});
  Buffer w(Device::cpu, DType::f32, {8}), w_bad(Device::cpu, DType::f64, {8});
  EXPECT_THROW(rmsnorm_forward(c, {y.t(), r_bad.t(), x.t(), w.t()}), Error);
  EXPECT_THROW(rmsnorm_forward(c, {y.t(), r.t(), x.t(), w_bad.t()}), Error);
  Buffer ids(Device::cpu, DType::i32, {4, 8});
  EXPECT_THROW(rmsnorm_forward(c, {y.t(), r.t(), ids.t(), w.t()}), Error);
  Buffer dy(Device::cpu, DType::f32, {4, 7}), dx(Device::cpu, DType::f32, {4, 8}), dw(Device::cpu, DType::f32, {8});
  EXPECT_THROW(rmsnorm_backward(c, {dx.t(), dw.t(), dy.t(), x.t(), w.t(), r.t()}), Error);
  EXPECT_THROW(rmsnorm_forward(c, {y_bad.t(), r.t(), x.t(), w.t()}), Error);
}

}  // namespace attnlab::test
