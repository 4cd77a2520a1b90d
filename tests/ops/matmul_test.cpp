#include <algorithm>

#include "core/ops/matmul.h"
#include "ops/matmul_ref.h"
#include "support/testing.h"

namespace attnlab::test {

// Every transpose combination × packed / padded lds / batched with gaps × alpha/beta × bias,
// against the naive double loop, in f64 (to rounding) and f32. One-row products (M = 1: decode
// steps) take the CPU's matrix-vector path.
TEST(Matmul, CpuMatchesNaiveLoopEveryLayout) {
  uint64_t seed = 100;
  int cases = 0;
  for (DType dt : {DType::f64, DType::f32})
    for (auto [M, N, K] : {std::array<int64_t, 3>{5, 7, 3}, {17, 13, 11}, {1, 1, 1}, {1, 29, 13}})
      for (int t = 0; t < 4; ++t)
        for (int layout = 0; layout < 3; ++layout)
          for (auto [alpha, beta] : {std::pair{1.0, 0.0}, {0.75, 1.25}, {-1.5, 0.0}})
            for (bool bias : {false, true}) {
              GemmCase g;
              g.M = M, g.N = N, g.K = K;
              g.ta = t & 1, g.tb = t & 2;
              g.pad_ld = layout >= 1 ? 3 : 0;
              g.batch = layout == 2 ? 3 : 1;
              g.pad_stride = layout == 2 ? 5 : 0;
              g.alpha = alpha, g.beta = beta, g.bias = bias;
              const double err = run_gemm_case(Device::cpu, dt, dt, g, seed++);
              EXPECT_LT(err, dt == DType::f64 ? 1e-14 : 1e-6) << dtype_name(dt) << " " << g.str();
              ++cases;
            }
  EXPECT_EQ(cases, 2 * 4 * 4 * 3 * 3 * 2);
}

// Padding in A and B holds NaN: a product that reads outside op(A)/op(B) turns C into NaN.
TEST(Matmul, CpuReadsNothingOutsideTheOperands) {
  GemmCase g;
  g.M = 6, g.N = 5, g.K = 4, g.batch = 2, g.pad_ld = 2, g.pad_stride = 3, g.ta = true;
  auto a = rand_uniform(size_t(g.size_a()), -1, 1, 7), b = rand_uniform(size_t(g.size_b()), -1, 1, 8);
  auto is_a = [&](int64_t i) {
    const int64_t w = i % g.sa();
    return w < g.rows_a() * g.lda() && w % g.lda() < g.cols_a();
  };
  auto is_b = [&](int64_t i) {
    const int64_t w = i % g.sb();
    return w < g.rows_b() * g.ldb() && w % g.ldb() < g.cols_b();
  };
  for (int64_t i = 0; i < g.size_a(); ++i)
    if (!is_a(i)) a[size_t(i)] = NAN;
  for (int64_t i = 0; i < g.size_b(); ++i)
    if (!is_b(i)) b[size_t(i)] = NAN;
  Buffer ta = make_tensor(Device::cpu, DType::f64, {g.size_a()}, a);
  Buffer tb = make_tensor(Device::cpu, DType::f64, {g.size_b()}, b);
  Buffer tc = make_poisoned(Device::cpu, DType::f64, {g.size_c()});
  MatmulArgs m;
  m.c = tc.t(), m.a = ta.t(), m.b = tb.t();
  m.M = g.M, m.N = g.N, m.K = g.K, m.batch = g.batch, m.trans_a = true;
  m.lda = g.lda(), m.ldb = g.ldb(), m.ldc = g.ldc();
  m.stride_a = g.sa(), m.stride_b = g.sb(), m.stride_c = g.sc();
  matmul(cpu_ctx(), m);
  auto got = to_host_f64(cpu_ctx(), tc.t());
  std::vector<double> want(got.size(), 0.0), got_region;
  ref_matmul(g, a, b, nullptr, want);
  std::vector<double> want_region;
  for (int64_t i = 0; i < g.size_c(); ++i)
    if (in_c_region(g, i)) {
      got_region.push_back(got[size_t(i)]);
      want_region.push_back(want[size_t(i)]);
    } else {
      EXPECT_TRUE(std::isnan(got[size_t(i)])) << "gap element " << i << " of C was written";
    }
  EXPECT_EQ(got_region.size(), size_t(g.batch * g.M * g.N));
  EXPECT_LT(rel_err(got_region, want_region), 1e-14);
}

// alpha and beta reach the f64 product unrounded. With small-integer operands and C every dot
// product is exact in double, so C = alpha·s + beta·c0 carries only the rounding of the final
// multiply-add (~1e-16); a float alpha = 1 − λ_init(l = 1) would be off by ~1.5e-8 relative.
TEST(Matmul, F64KeepsDoubleScalars) {
  const double alpha = 1.0 - (0.8 - 0.6 * std::exp(-0.3));  // 1 − λ_init of layer 1 (METHODS §3.2)
  const double beta = 0.8 - 0.6 * std::exp(-0.3 * 2.0);
  // The test can tell: both scalars move by far more than 1e-16 when rounded to float.
  ASSERT_GT(std::abs(double(float(alpha)) - alpha) / alpha, 1e-9);
  ASSERT_GT(std::abs(double(float(beta)) - beta) / beta, 1e-9);
  const int64_t M = 7, N = 11, K = 13;
  auto ints = [](size_t n, uint64_t seed) {
    std::vector<double> v;
    for (int32_t x : rand_ints(n, 1, 10, seed)) v.push_back(double(x));  // positive: no product is 0
    return v;
  };
  const auto a = ints(size_t(M * K), 41), b = ints(size_t(K * N), 42), c0 = ints(size_t(M * N), 43);
  for (double bt : {0.0, beta}) {
    Buffer ta = make_tensor(Device::cpu, DType::f64, {M, K}, a, "A");
    Buffer tb = make_tensor(Device::cpu, DType::f64, {K, N}, b, "B");
    Buffer tc = make_tensor(Device::cpu, DType::f64, {M, N}, c0, "C");
    MatmulArgs m;
    m.c = tc.t(), m.a = ta.t(), m.b = tb.t();
    m.M = M, m.N = N, m.K = K;
    m.alpha = alpha, m.beta = bt;
    matmul(cpu_ctx(), m);
    const auto got = to_host_f64(cpu_ctx(), tc.t());
    double worst = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;  // exact: integers far below 2^53
        for (int64_t k = 0; k < K; ++k) s += a[size_t(i * K + k)] * b[size_t(k * N + j)];
        const double want = alpha * s + bt * c0[size_t(i * N + j)];
        const double got_ij = got[size_t(i * N + j)];
        ASSERT_NE(want, 0.0);
        worst = std::max(worst, std::abs(got_ij - want) / std::abs(want));
      }
    EXPECT_LT(worst, 1e-15) << "beta " << bt << ": the f64 product used rounded scalars";
  }
}

// The f32 product rounds the scalars to float (and only there): it agrees with the double
// reference to float precision, neither better nor worse than an f32 GEMM.
TEST(Matmul, F32RoundsDoubleScalarsToFloat) {
  const double alpha = 1.0 - (0.8 - 0.6 * std::exp(-0.3));
  GemmCase g;
  g.M = 7, g.N = 11, g.K = 13, g.alpha = alpha, g.beta = 0.8 - 0.6 * std::exp(-0.6);
  EXPECT_LT(run_gemm_case(Device::cpu, DType::f32, DType::f32, g, 77), 1e-6) << g.str();
}

namespace {
struct LinearData {
  int64_t rows, in, out;
  std::vector<double> x, w, b, dy;
};
LinearData linear_data(int64_t rows, int64_t in, int64_t out, uint64_t seed) {
  return {rows, in, out, rand_uniform(size_t(rows * in), -1, 1, seed),
          rand_uniform(size_t(out * in), -1, 1, seed + 1), rand_uniform(size_t(out), -1, 1, seed + 2),
          rand_uniform(size_t(rows * out), -1, 1, seed + 3)};
}
}  // namespace

// Backward against the formulas of METHODS.md P1 computed by hand, with accumulation into
// non-zero dW, db and (accumulate_dx) dX.
TEST(Linear, BackwardMatchesFormulasAndAccumulates) {
  for (DType dt : {DType::f64, DType::f32}) {
    const int64_t rows = 9, in = 6, out = 5;
    auto d = linear_data(rows, in, out, 31);
    auto dx0 = rand_uniform(size_t(rows * in), -1, 1, 41), dw0 = rand_uniform(size_t(out * in), -1, 1, 42);
    auto db0 = rand_uniform(size_t(out), -1, 1, 43);
    Ctx& c = cpu_ctx();
    Buffer x = make_tensor(Device::cpu, dt, {3, 3, in}, d.x, "x"), w = make_tensor(Device::cpu, dt, {out, in}, d.w, "w");
    Buffer dy = make_tensor(Device::cpu, dt, {3, 3, out}, d.dy, "dy");
    Buffer dx = make_tensor(Device::cpu, dt, {3, 3, in}, dx0, "dx");
    Buffer dw = make_tensor(Device::cpu, dt, {out, in}, dw0, "dw"), db = make_tensor(Device::cpu, dt, {out}, db0, "db");
    LinearBackwardArgs args{dy.t(), x.t(), w.t(), dx.t(), dw.t(), db.t()};
    args.accumulate_dx = true;
    linear_backward(c, args);
    auto r = [&](const std::vector<double>& v) { return round_as(dt, v); };
    auto X = r(d.x), W = r(d.w), DY = r(d.dy);
    std::vector<double> wdx = r(dx0), wdw = r(dw0), wdb = r(db0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < in; ++j)
        for (int64_t o = 0; o < out; ++o) wdx[i * in + j] += DY[i * out + o] * W[o * in + j];
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t j = 0; j < in; ++j)
        for (int64_t i = 0; i < rows; ++i) wdw[o * in + j] += DY[i * out + o] * X[i * in + j];
      for (int64_t i = 0; i < rows; ++i) wdb[o] += DY[i * out + o];
    }
    const double tol = dt == DType::f64 ? 1e-14 : 1e-6;
    EXPECT_LT(rel_err(to_host_f64(c, dx.t()), wdx), tol) << dtype_name(dt);
    EXPECT_LT(rel_err(to_host_f64(c, dw.t()), wdw), tol) << dtype_name(dt);
    EXPECT_LT(rel_err(to_host_f64(c, db.t()), wdb), tol) << dtype_name(dt);

    // accumulate_dx = false overwrites a poisoned dX.
    Buffer dx2 = make_poisoned(Device::cpu, dt, {rows, in}, "dx2");
    linear_backward(c, {dy.t(), x.t(), w.t(), dx2.t(), Tensor{}, Tensor{}});
    auto got = to_host_f64(c, dx2.t());
    for (auto& v : wdx) v = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < in; ++j)
        for (int64_t o = 0; o < out; ++o) wdx[i * in + j] += DY[i * out + o] * W[o * in + j];
    EXPECT_LT(rel_err(got, wdx), tol) << dtype_name(dt);
  }
}

TEST(Linear, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 7, in = 5, out = 4;
  auto d = linear_data(rows, in, out, 51);
  Buffer x(Device::cpu, DType::f64, {rows, in}), w(Device::cpu, DType::f64, {out, in});
  Buffer b(Device::cpu, DType::f64, {out}), y(Device::cpu, DType::f64, {rows, out});
  // loss = Σ dy ⊙ y, so dL/dy = dy.
  auto loss = [&] {
    from_host_f64(c, x.t(), d.x);
    from_host_f64(c, w.t(), d.w);
    from_host_f64(c, b.t(), d.b);
    linear_forward(c, {y.t(), x.t(), w.t(), b.t()});
    auto yv = to_host_f64(c, y.t());
    double l = 0;
    for (size_t i = 0; i < yv.size(); ++i) l += d.dy[i] * yv[i];
    return l;
  };
  loss();  // loads the inputs
  Buffer dy = make_tensor(Device::cpu, DType::f64, {rows, out}, d.dy);
  Buffer dx = make_poisoned(Device::cpu, DType::f64, {rows, in});
  // dW and db start non-zero: backward adds to them, the FD compares the increment.
  auto dw0 = rand_uniform(size_t(out * in), -1, 1, 61), db0 = rand_uniform(size_t(out), -1, 1, 62);
  Buffer dw = make_tensor(Device::cpu, DType::f64, {out, in}, dw0);
  Buffer db = make_tensor(Device::cpu, DType::f64, {out}, db0);
  linear_backward(c, {dy.t(), x.t(), w.t(), dx.t(), dw.t(), db.t()});
  auto gx = to_host_f64(c, dx.t()), gw = to_host_f64(c, dw.t()), gb = to_host_f64(c, db.t());
  for (size_t i = 0; i < gw.size(); ++i) gw[i] -= dw0[i];
  for (size_t i = 0; i < gb.size(); ++i) gb[i] -= db0[i];
  std::string report;
  double err = fd_check(loss,
                        {{"x", d.x.data(), d.x.size(), &gx},
                         {"w", d.w.data(), d.w.size(), &gw},
                         {"bias", d.b.data(), d.b.size(), &gb}},
                        1e-6, 64, &report);
  record_fd_error("linear", err);
  EXPECT_LT(err, 1e-7) << report;
}

// A frozen weight (dW, db undefined) costs no product and touches nothing; dX is still right.
TEST(Linear, FrozenWeightSkipsParameterGradients) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 6, in = 4, out = 3;
  auto d = linear_data(rows, in, out, 71);
  Buffer x = make_tensor(Device::cpu, DType::f64, {rows, in}, d.x), w = make_tensor(Device::cpu, DType::f64, {out, in}, d.w);
  Buffer dy = make_tensor(Device::cpu, DType::f64, {rows, out}, d.dy);
  auto keep = rand_uniform(size_t(out * in), -1, 1, 72);
  Buffer dw_kept = make_tensor(Device::cpu, DType::f64, {out, in}, keep);
  Buffer dx = make_poisoned(Device::cpu, DType::f64, {rows, in});
  linear_backward(c, {dy.t(), x.t(), w.t(), dx.t(), Tensor{}, Tensor{}});
  std::vector<double> want(size_t(rows * in), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < in; ++j)
      for (int64_t o = 0; o < out; ++o) want[i * in + j] += d.dy[i * out + o] * d.w[o * in + j];
  EXPECT_LT(rel_err(to_host_f64(c, dx.t()), want), 1e-14);
  EXPECT_EQ(to_host_f64(c, dw_kept.t()), keep);

  // dX undefined (first layer): dW still accumulates.
  Buffer dw = make_tensor(Device::cpu, DType::f64, {out, in}, keep);
  linear_backward(c, {dy.t(), x.t(), w.t(), Tensor{}, dw.t(), Tensor{}});
  auto wdw = keep;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t j = 0; j < in; ++j)
      for (int64_t i = 0; i < rows; ++i) wdw[o * in + j] += d.dy[i * out + o] * d.x[i * in + j];
  EXPECT_LT(rel_err(to_host_f64(c, dw.t()), wdw), 1e-14);
}

TEST(Linear, ForwardAddsBias) {
  Ctx& c = cpu_ctx();
  const int64_t rows = 5, in = 3, out = 4;
  auto d = linear_data(rows, in, out, 81);
  Buffer x = make_tensor(Device::cpu, DType::f32, {rows, in}, d.x), w = make_tensor(Device::cpu, DType::f32, {out, in}, d.w);
  Buffer b = make_tensor(Device::cpu, DType::f32, {out}, d.b), y = make_poisoned(Device::cpu, DType::f32, {rows, out});
  linear_forward(c, {y.t(), x.t(), w.t(), b.t()});
  auto X = round_as(DType::f32, d.x), W = round_as(DType::f32, d.w), B = round_as(DType::f32, d.b);
  std::vector<double> want(size_t(rows * out));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = B[o];
      for (int64_t j = 0; j < in; ++j) s += X[i * in + j] * W[o * in + j];
      want[i * out + o] = s;
    }
  EXPECT_LT(rel_err(to_host_f64(c, y.t()), want), 1e-6);
}

TEST(Matmul, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  const int64_t M = 4, N = 5, K = 3;
  auto v = [](int64_t n) { return rand_uniform(size_t(n), -1, 1, uint64_t(n)); };
  Buffer a = make_tensor(Device::cpu, DType::f32, {M, K}, v(M * K), "a");
  Buffer a_wide = make_tensor(Device::cpu, DType::f32, {M, K + 1}, v(M * (K + 1)), "a_wide");
  Buffer b = make_tensor(Device::cpu, DType::f32, {K, N}, v(K * N), "b");
  Buffer b_short = make_tensor(Device::cpu, DType::f32, {K - 1, N}, v((K - 1) * N), "b_short");
  Buffer b64 = make_tensor(Device::cpu, DType::f64, {K, N}, v(K * N), "b64");
  Buffer cc = make_poisoned(Device::cpu, DType::f32, {M, N}, "c");
  Buffer c64 = make_poisoned(Device::cpu, DType::f64, {M, N}, "c64");
  Buffer bias_short = make_tensor(Device::cpu, DType::f32, {N - 1}, v(N - 1), "bias_short");
  Buffer bias64 = make_tensor(Device::cpu, DType::f64, {N}, v(N), "bias64");
  Buffer abf = make_tensor(Device::cpu, DType::bf16, {M, K}, v(M * K), "abf");
  Buffer bbf = make_tensor(Device::cpu, DType::bf16, {K, N}, v(K * N), "bbf");
  Buffer cbf = make_poisoned(Device::cpu, DType::bf16, {M, N}, "cbf");
  auto args = [&](const Tensor& cm, const Tensor& am, const Tensor& bm) {
    MatmulArgs m;
    m.c = cm, m.a = am, m.b = bm, m.M = M, m.N = N, m.K = K;
    return m;
  };
  EXPECT_NO_THROW(matmul(c, args(cc.t(), a.t(), b.t())));
  EXPECT_THROW(matmul(c, args(cc.t(), a_wide.t(), b.t())), Error);   // A is M×(K+1)
  EXPECT_THROW(matmul(c, args(cc.t(), a.t(), b_short.t())), Error);  // B has K-1 rows
  EXPECT_THROW(matmul(c, args(cc.t(), a.t(), b64.t())), Error);      // operand dtypes differ
  EXPECT_THROW(matmul(c, args(c64.t(), a.t(), b.t())), Error);       // C dtype differs (CPU)
  EXPECT_THROW(matmul(c, args(cbf.t(), abf.t(), bbf.t())), Error);   // bf16 runs on CUDA only
  MatmulArgs m = args(cc.t(), a.t(), b.t());
  m.bias = bias_short.t();
  EXPECT_THROW(matmul(c, m), Error);  // bias length != N
  m.bias = bias64.t();
  EXPECT_THROW(matmul(c, m), Error);  // bias dtype != C
  m = args(cc.t(), a.t(), b.t());
  m.lda = K - 1;
  EXPECT_THROW(matmul(c, m), Error);  // ld shorter than a row
  m = args(cc.t(), a.t(), b.t());
  m.batch = 2;
  EXPECT_THROW(matmul(c, m), Error);  // a second batch reaches past every tensor
  m = args(cc.t(), a.t(), b.t());
  m.trans_a = true;
  EXPECT_THROW(matmul(c, m), Error);  // A [4,3] is not K×M = 3×4
  m = args(cc.t(), a.t(), b.t());
  m.K = 0;
  EXPECT_THROW(matmul(c, m), Error);
  m = args(Tensor{}, a.t(), b.t());
  EXPECT_THROW(matmul(c, m), Error);  // C undefined

  // linear: W [out, in] must match x's last dim; parameter gradients in the acc dtype.
  Buffer x = make_tensor(Device::cpu, DType::f64, {M, K}, v(M * K), "x");
  Buffer w_bad = make_tensor(Device::cpu, DType::f64, {N, K + 1}, v(N * (K + 1)), "w_bad");
  Buffer w = make_tensor(Device::cpu, DType::f64, {N, K}, v(N * K), "w");
  Buffer y = make_poisoned(Device::cpu, DType::f64, {M, N}, "y");
  Buffer y_bad = make_poisoned(Device::cpu, DType::f64, {M, N + 1}, "y_bad");
  Buffer dw32 = make_poisoned(Device::cpu, DType::f32, {N, K}, "dw32");
  EXPECT_NO_THROW(linear_forward(c, {y.t(), x.t(), w.t(), Tensor{}}));
  EXPECT_THROW(linear_forward(c, {y.t(), x.t(), w_bad.t(), Tensor{}}), Error);
  EXPECT_THROW(linear_forward(c, {y_bad.t(), x.t(), w.t(), Tensor{}}), Error);
  EXPECT_THROW(linear_backward(c, {y.t(), x.t(), w.t(), Tensor{}, dw32.t(), Tensor{}}), Error);
  EXPECT_THROW(linear_backward(c, {y_bad.t(), x.t(), w.t(), Tensor{}, Tensor{}, Tensor{}}), Error);
}

}  // namespace attnlab::test
