#include "core/ops/layernorm.h"

#include <cmath>

#include "support/testing.h"

namespace attnlab::test {

namespace {

// Per-row mean and biased variance of a rows × C matrix, straight from the definition.
void row_moments(const std::vector<double>& x, int64_t rows, int64_t C, std::vector<double>* mean,
                 std::vector<double>* var) {
  mean->assign(rows, 0.0);
  var->assign(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += x[r * C + c];
    (*mean)[r] = s / C;
    double q = 0;
    for (int64_t c = 0; c < C; ++c) q += (x[r * C + c] - (*mean)[r]) * (x[r * C + c] - (*mean)[r]);
    (*var)[r] = q / C;
  }
}

struct LnRun {
  std::vector<double> y, mean, rstd;
};

LnRun run_forward(DType dt, int64_t rows, int64_t C, const std::vector<double>& x, const std::vector<double>* w,
                  const std::vector<double>* b, double eps) {
  Ctx& c = cpu_ctx();
  const DType at = acc_dtype(dt);
  Buffer tx = make_tensor(Device::cpu, dt, {rows, C}, x);
  Buffer tw = w ? make_tensor(Device::cpu, dt, {C}, *w) : Buffer();
  Buffer tb = b ? make_tensor(Device::cpu, dt, {C}, *b) : Buffer();
  Buffer ty = make_poisoned(Device::cpu, dt, {rows, C});
  Buffer tm = make_poisoned(Device::cpu, at, {rows}), tr = make_poisoned(Device::cpu, at, {rows});
  LayerNormArgs a{ty.t(), tm.t(), tr.t(), tx.t(), tw.t(), tb.t(), eps};
  layernorm_forward(c, a);
  return {to_host_f64(c, ty.t()), to_host_f64(c, tm.t()), to_host_f64(c, tr.t())};
}

}  // namespace

TEST(LayerNorm, ForwardRowsHaveZeroMeanAndUnitVariance) {
  const int64_t rows = 7, C = 31;
  const double eps = 1e-5;
  auto x = rand_uniform(rows * C, -3, 5, 11);  // offset and scaled: normalisation has work to do
  LnRun got = run_forward(DType::f64, rows, C, x, nullptr, nullptr, eps);
  std::vector<double> xm, xv, ym, yv;
  row_moments(x, rows, C, &xm, &xv);
  row_moments(got.y, rows, C, &ym, &yv);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(ym[r], 0.0, 1e-14) << r;
    EXPECT_NEAR(yv[r], xv[r] / (xv[r] + eps), 1e-13) << r;  // exactly 1 without eps
    EXPECT_NEAR(got.mean[r], xm[r], 1e-14) << r;
    EXPECT_NEAR(got.rstd[r], 1.0 / std::sqrt(xv[r] + eps), 1e-12) << r;
  }
}

TEST(LayerNorm, AffineMatchesDefinitionAndFloatMatchesDouble) {
  const int64_t rows = 5, C = 173;
  const double eps = 1e-3;
  auto x = rand_uniform(rows * C, -2, 3, 12), w = rand_uniform(C, 0.5, 1.5, 13), b = rand_uniform(C, -1, 1, 14);
  LnRun d = run_forward(DType::f64, rows, C, x, &w, &b, eps);
  std::vector<double> xm, xv, ref(rows * C);
  row_moments(x, rows, C, &xm, &xv);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) ref[r * C + c] = (x[r * C + c] - xm[r]) / std::sqrt(xv[r] + eps) * w[c] + b[c];
  EXPECT_LT(rel_err(d.y, ref), 1e-14);
  LnRun f = run_forward(DType::f32, rows, C, round_as(DType::f32, x), &w, &b, eps);
  EXPECT_LT(rel_err(f.y, ref), 1e-6);
  EXPECT_LT(rel_err(f.rstd, d.rstd), 1e-6);
}

TEST(LayerNorm, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 5, C = 13;
  auto x = rand_uniform(rows * C, -2, 2, 21), w = rand_uniform(C, 0.5, 1.5, 22), b = rand_uniform(C, -1, 1, 23);
  auto R = rand_uniform(rows * C, -1, 1, 24);  // loss = Σ R ⊙ y
  Buffer tx(Device::cpu, DType::f64, {rows, C}), tw(Device::cpu, DType::f64, {C}), tb(Device::cpu, DType::f64, {C});
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tm(Device::cpu, DType::f64, {rows}),
      tr(Device::cpu, DType::f64, {rows});
  auto loss = [&] {
    from_host_f64(c, tx.t(), x);
    from_host_f64(c, tw.t(), w);
    from_host_f64(c, tb.t(), b);
    layernorm_forward(c, {ty.t(), tm.t(), tr.t(), tx.t(), tw.t(), tb.t(), 1e-5});
    auto y = to_host_f64(c, ty.t());
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += R[i] * y[i];
    return l;
  };
  loss();
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, R);
  Buffer tdx = make_poisoned(Device::cpu, DType::f64, {rows, C});
  Buffer tdw = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  Buffer tdb = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  LayerNormBackwardArgs a;
  a.dx = tdx.t();
  a.dweight = tdw.t();
  a.dbias = tdb.t();
  a.dy = tdy.t();
  a.x = tx.t();
  a.weight = tw.t();
  a.mean = tm.t();
  a.rstd = tr.t();
  layernorm_backward(c, a);
  auto gx = to_host_f64(c, tdx.t()), gw = to_host_f64(c, tdw.t()), gb = to_host_f64(c, tdb.t());
  std::string report;
  double err = fd_check(
      loss, {{"x", x.data(), x.size(), &gx}, {"gamma", w.data(), w.size(), &gw}, {"beta", b.data(), b.size(), &gb}},
      1e-6, 64, &report);
  record_fd_error("layernorm", err);
  EXPECT_LT(err, 1e-7) << report;
}

TEST(LayerNorm, BackwardAccumulatesAndSkipsFrozen) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 6, C = 29;
  auto x = rand_uniform(rows * C, -2, 2, 31), w = rand_uniform(C, 0.5, 1.5, 32), dy = rand_uniform(rows * C, -1, 1, 33);
  auto dx0 = rand_uniform(rows * C, -1, 1, 34), dw0 = rand_uniform(C, -1, 1, 35), db0 = rand_uniform(C, -1, 1, 36);
  Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), tw = make_tensor(Device::cpu, DType::f64, {C}, w);
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tm(Device::cpu, DType::f64, {rows}),
      tr(Device::cpu, DType::f64, {rows});
  layernorm_forward(c, {ty.t(), tm.t(), tr.t(), tx.t(), tw.t(), Tensor{}, 1e-5});
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);

  // Reference: overwrite dx, gradients into zeroed buffers.
  Buffer rdx = make_poisoned(Device::cpu, DType::f64, {rows, C});
  Buffer rdw = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  Buffer rdb = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  LayerNormBackwardArgs a{rdx.t(), rdw.t(), rdb.t(), tdy.t(), tx.t(), tw.t(), tm.t(), tr.t()};
  layernorm_backward(c, a);
  auto ref_dx = to_host_f64(c, rdx.t()), ref_dw = to_host_f64(c, rdw.t()), ref_db = to_host_f64(c, rdb.t());

  // Accumulate into non-zero buffers.
  Buffer adx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0),
         adw = make_tensor(Device::cpu, DType::f64, {C}, dw0);
  Buffer adb = make_tensor(Device::cpu, DType::f64, {C}, db0);
  a.dx = adx.t();
  a.dweight = adw.t();
  a.dbias = adb.t();
  a.accumulate_dx = true;
  layernorm_backward(c, a);
  auto gdx = to_host_f64(c, adx.t()), gdw = to_host_f64(c, adw.t()), gdb = to_host_f64(c, adb.t());
  for (int64_t i = 0; i < rows * C; ++i) ASSERT_NEAR(gdx[i], dx0[i] + ref_dx[i], 1e-14) << i;
  for (int64_t i = 0; i < C; ++i) {
    ASSERT_NEAR(gdw[i], dw0[i] + ref_dw[i], 1e-13) << i;
    ASSERT_NEAR(gdb[i], db0[i] + ref_db[i], 1e-13) << i;
  }
  // dβ is Σ_rows dy by definition.
  for (int64_t cc = 0; cc < C; ++cc) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * C + cc];
    ASSERT_NEAR(ref_db[cc], s, 1e-13);
  }

  // Frozen γ and β: dx unchanged, nothing else touched.
  Buffer fdx = make_poisoned(Device::cpu, DType::f64, {rows, C});
  layernorm_backward(c, {fdx.t(), Tensor{}, Tensor{}, tdy.t(), tx.t(), tw.t(), tm.t(), tr.t()});
  EXPECT_EQ(to_host_f64(c, fdx.t()), ref_dx);
  // No dx (input needs no gradient): only the parameter gradients.
  Buffer odw = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 0.0));
  layernorm_backward(c, {Tensor{}, odw.t(), Tensor{}, tdy.t(), tx.t(), tw.t(), tm.t(), tr.t()});
  EXPECT_EQ(to_host_f64(c, odw.t()), ref_dw);
}

TEST(LayerNorm, MissingWeightActsAsOnes) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 3, C = 17;
  auto x = rand_uniform(rows * C, -2, 2, 41), dy = rand_uniform(rows * C, -1, 1, 42);
  Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x);
  Buffer ones = make_tensor(Device::cpu, DType::f64, {C}, std::vector<double>(C, 1.0));
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tm(Device::cpu, DType::f64, {rows}),
      tr(Device::cpu, DType::f64, {rows});
  layernorm_forward(c, {ty.t(), tm.t(), tr.t(), tx.t(), Tensor{}, Tensor{}, 1e-5});
  Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);
  Buffer d1 = make_poisoned(Device::cpu, DType::f64, {rows, C}), d2 = make_poisoned(Device::cpu, DType::f64, {rows, C});
  layernorm_backward(c, {d1.t(), Tensor{}, Tensor{}, tdy.t(), tx.t(), Tensor{}, tm.t(), tr.t()});
  layernorm_backward(c, {d2.t(), Tensor{}, Tensor{}, tdy.t(), tx.t(), ones.t(), tm.t(), tr.t()});
  EXPECT_EQ(to_host_f64(c, d1.t()), to_host_f64(c, d2.t()));
  // Each row of dx sums to zero (dx is orthogonal to the all-ones direction).
  auto g = to_host_f64(c, d1.t());
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t cc = 0; cc < C; ++cc) s += g[r * C + cc];
    EXPECT_NEAR(s, 0.0, 1e-12) << r;
  }
}

TEST(LayerNorm, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  Buffer x(Device::cpu, DType::f32, {4, 8}), y(Device::cpu, DType::f32, {4, 8}), y_bad(Device::cpu, DType::f32, {4, 9});
  Buffer m(Device::cpu, DType::f32, {4}), r(Device::cpu, DType::f32, {4}), m_bad(Device::cpu, DType::f64, {4});
  Buffer w(Device::cpu, DType::f32, {8}), w_bad(Device::cpu, DType::f32, {7});
  EXPECT_THROW(layernorm_forward(c, {y_bad.t(), m.t(), r.t(), x.t(), w.t(), Tensor{}}), Error);
  EXPECT_THROW(layernorm_forward(c, {y.t(), m.t(), r.t(), x.t(), w_bad.t(), Tensor{}}), Error);
  EXPECT_THROW(layernorm_forward(c, {y.t(), m_bad.t(), r.t(), x.t(), w.t(), Tensor{}}), Error);
  EXPECT_THROW(layernorm_forward(c, {y.t(), m.t(), r.t(), x.t(), w.t(), Tensor{}, -1.0}), Error);
  Buffer dy(Device::cpu, DType::f32, {4, 8}), dw(Device::cpu, DType::f32, {8});
  // dx aliasing dy, and a weight gradient for a forward without weight.
  EXPECT_THROW(layernorm_backward(c, {dy.t(), Tensor{}, Tensor{}, dy.t(), x.t(), w.t(), m.t(), r.t()}), Error);
  EXPECT_THROW(layernorm_backward(c, {y.t(), dw.t(), Tensor{}, dy.t(), x.t(), Tensor{}, m.t(), r.t()}), Error);
  // bf16 runs on CUDA only.
  Buffer xb(Device::cpu, DType::bf16, {4, 8}), yb(Device::cpu, DType::bf16, {4, 8});
  EXPECT_THROW(layernorm_forward(c, {yb.t(), m.t(), r.t(), xb.t(), Tensor{}, Tensor{}}), Error);
}

}  // namespace attnlab::test
