#pragma once
// Naive double-precision matmul reference and the case builder shared by the CPU and GPU
// matmul tests: lay out A, B and C with the case's lds and batch strides (gaps included), run
// the op, compare every element of C's buffer (the product where it writes, the untouched
// initial values in the gaps).
#include <cmath>
#include <string>
#include <vector>

#include "core/ops/matmul.h"
#include "support/testing.h"

namespace attnlab::test {

struct GemmCase {
  int64_t M = 1, N = 1, K = 1, batch = 1;
  bool ta = false, tb = false;
  int64_t pad_ld = 0;      // extra elements per stored row (0: packed lds)
  int64_t pad_stride = 0;  // extra elements between batches (0: packed strides)
  double alpha = 1, beta = 0;
  bool bias = false;
  bool tf32 = false;

  int64_t rows_a() const { return ta ? K : M; }
  int64_t cols_a() const { return ta ? M : K; }
  int64_t rows_b() const { return tb ? N : K; }
  int64_t cols_b() const { return tb ? K : N; }
  int64_t lda() const { return cols_a() + pad_ld; }
  int64_t ldb() const { return cols_b() + pad_ld; }
  int64_t ldc() const { return N + pad_ld; }
  int64_t sa() const { return rows_a() * lda() + pad_stride; }
  int64_t sb() const { return rows_b() * ldb() + pad_stride; }
  int64_t sc() const { return M * ldc() + pad_stride; }
  int64_t size_a() const { return (batch - 1) * sa() + rows_a() * lda(); }
  int64_t size_b() const { return (batch - 1) * sb() + rows_b() * ldb(); }
  int64_t size_c() const { return (batch - 1) * sc() + M * ldc(); }
  bool packed() const { return pad_ld == 0 && pad_stride == 0; }
  std::string str() const {
    return detail::cat("M", M, "xN", N, "xK", K, " b", batch, ta ? " At" : "", tb ? " Bt" : "",
                       pad_ld ? " padded" : "", " alpha", alpha, " beta", beta, bias ? " bias" : "");
  }
};

// Whether element i of C's buffer is written by the product (inside a batch's M×N block).
inline bool in_c_region(const GemmCase& g, int64_t i) {
  const int64_t within = i % g.sc(), b = i / g.sc();
  return b < g.batch && within < g.M * g.ldc() && within % g.ldc() < g.N;
}

// c: the initial buffer on entry (read only when beta != 0), the expected buffer on exit.
inline void ref_matmul(const GemmCase& g, const std::vector<double>& a, const std::vector<double>& b,
                       const std::vector<double>* bias, std::vector<double>& c) {
  for (int64_t bi = 0; bi < g.batch; ++bi)
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < g.K; ++k) {
          const double av = g.ta ? a[bi * g.sa() + k * g.lda() + m] : a[bi * g.sa() + m * g.lda() + k];
          const double bv = g.tb ? b[bi * g.sb() + n * g.ldb() + k] : b[bi * g.sb() + k * g.ldb() + n];
          s += av * bv;
        }
        double& out = c[bi * g.sc() + m * g.ldc() + n];
        out = g.alpha * s + (g.beta != 0 ? g.beta * out : 0.0) + (bias ? (*bias)[n] : 0.0);
      }
}

// A buffer for one stored matrix: 2-D (rows × cols) when packed and unbatched so the packed
// last-dim check runs, flat otherwise.
inline Buffer make_matrix(Device dev, DType dt, const GemmCase& g, int64_t rows, int64_t cols,
                          const std::vector<double>& v, const char* name) {
  if (g.packed() && g.batch == 1) return make_tensor(dev, dt, {rows, cols}, v, name);
  return make_tensor(dev, dt, {int64_t(v.size())}, v, name);
}

// Runs one case on `dev` with operands `ab` and output `cd`; returns ‖C − ref‖/‖ref‖ over C's
// whole buffer. Inputs are rounded to their dtypes before the reference sees them. Where beta
// is 0 the written region starts as NaN (poison), so an element the op fails to write fails.
inline double run_gemm_case(Device dev, DType ab, DType cd, const GemmCase& g, uint64_t seed) {
  const bool gpu = dev == Device::cuda;
  auto a = round_as(ab, rand_uniform(size_t(g.size_a()), -1, 1, seed));
  auto b = round_as(ab, rand_uniform(size_t(g.size_b()), -1, 1, seed + 1));
  auto c0 = round_as(cd, rand_uniform(size_t(g.size_c()), -1, 1, seed + 2));
  auto bias = round_as(cd, rand_uniform(size_t(g.N), -1, 1, seed + 3));
  if (g.beta == 0)
    for (int64_t i = 0; i < g.size_c(); ++i)
      if (in_c_region(g, i)) c0[size_t(i)] = NAN;
  Buffer ta = make_matrix(dev, ab, g, g.rows_a(), g.cols_a(), a, "A");
  Buffer tb = make_matrix(dev, ab, g, g.rows_b(), g.cols_b(), b, "B");
  Buffer tc = (g.beta == 0 && g.packed() && g.batch == 1)
                  ? make_poisoned(dev, cd, {g.M, g.N}, "C")
                  : make_matrix(dev, cd, g, g.M, g.N, c0, "C");
  Buffer tbias = make_tensor(dev, cd, {g.N}, bias, "bias");
  MatmulArgs m;
  m.c = tc.t(), m.a = ta.t(), m.b = tb.t();
  if (g.bias) m.bias = tbias.t();
  m.M = g.M, m.N = g.N, m.K = g.K, m.batch = g.batch;
  m.trans_a = g.ta, m.trans_b = g.tb;
  if (!g.packed()) {
    m.lda = g.lda(), m.ldb = g.ldb(), m.ldc = g.ldc();
    m.stride_a = g.sa(), m.stride_b = g.sb(), m.stride_c = g.sc();
  }
  m.alpha = g.alpha, m.beta = g.beta;
  m.allow_tf32 = g.tf32;
  Ctx& ctx = gpu ? gpu_ctx() : cpu_ctx();
  matmul(ctx, m);
  auto got = to_host_f64(ctx, tc.t());
  auto want = c0;
  ref_matmul(g, a, b, g.bias ? &bias : nullptr, want);
  return rel_err(got, want);
}

}  // namespace attnlab::test
