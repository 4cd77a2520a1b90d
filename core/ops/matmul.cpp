#include "core/ops/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

namespace {

struct StoredMatrix {
  const char* role;  // "A", "B", "C"
  const Tensor* t;
  int64_t rows, cols;  // as stored (row-major), before any transpose
  int64_t* ld;         // filled with the packed width when 0
  int64_t* stride;     // filled with rows * ld when 0
};

// Resolves packed lds/strides and checks that the tensor holds every element the product reads
// or writes. With a packed ld, a tensor that carries >= 2 dims must have that width as its last
// dim: this is how a K mismatch between A and B shows up.
void resolve_and_check(const StoredMatrix& m, int64_t batch) {
  const Tensor& t = *m.t;
  CHECK(t.defined(), "matmul: ", m.role, " is undefined");
  CHECK(*m.ld >= 0 && *m.stride >= 0, "matmul: ", m.role, " has a negative ld or batch stride");
  if (*m.ld == 0) {
    if (t.ndim >= 2)
      CHECK(t.dim(-1) == m.cols, "matmul: ", m.role, " '", t.name, "' ", t.shape_str(),
            " is stored ", m.rows, "x", m.cols, " (packed) but its last dim is ", t.dim(-1),
            " (check M, N, K and the transposes)");
    *m.ld = m.cols;
  }
  CHECK(*m.ld >= m.cols, "matmul: ld of ", m.role, " is ", *m.ld, " but its stored rows have ",
        m.cols, " elements");
  if (*m.stride == 0) *m.stride = m.rows * *m.ld;
  const int64_t reach = (batch - 1) * *m.stride + (m.rows - 1) * *m.ld + m.cols;
  CHECK(reach <= t.numel(), "matmul: ", m.role, " '", t.name, "' ", t.shape_str(), " holds ",
        t.numel(), " elements but ", batch, " batch(es) of ", m.rows, "x", m.cols, " with ld ",
        *m.ld, " and stride ", *m.stride, " reach ", reach);
}

// Fills packed lds/strides, validates sizes, dtypes and devices. Returns false when the product
// is empty (M, N or batch is 0) and there is nothing to do.
bool validate(const Ctx& ctx, MatmulArgs& r) {
  CHECK(r.M >= 0 && r.N >= 0 && r.K >= 0 && r.batch >= 0, "matmul: negative size (M=", r.M,
        " N=", r.N, " K=", r.K, " batch=", r.batch, ")");
  if (r.M == 0 || r.N == 0 || r.batch == 0) return false;
  CHECK(r.K >= 1, "matmul: K is 0 (an empty inner dimension); nothing defines C");
  resolve_and_check({"A", &r.a, r.trans_a ? r.K : r.M, r.trans_a ? r.M : r.K, &r.lda, &r.stride_a}, r.batch);
  resolve_and_check({"B", &r.b, r.trans_b ? r.N : r.K, r.trans_b ? r.K : r.N, &r.ldb, &r.stride_b}, r.batch);
  resolve_and_check({"C", &r.c, r.M, r.N, &r.ldc, &r.stride_c}, r.batch);
  if (r.bias.defined()) {
    CHECK(r.bias.numel() == r.N, "matmul: bias '", r.bias.name, "' ", r.bias.shape_str(),
          " must have N=", r.N, " elements");
    CHECK(r.bias.dtype == r.c.dtype, "matmul: bias '", r.bias.name, "' is ",
          dtype_name(r.bias.dtype), " but C is ", dtype_name(r.c.dtype),
          "; the bias must have C's dtype (cuBLASLt's bias epilogue reads it in the output type)");
  }
  CHECK(r.a.dtype == r.b.dtype, "matmul: A '", r.a.name, "' is ", dtype_name(r.a.dtype), " but B '",
        r.b.name, "' is ", dtype_name(r.b.dtype), "; the operands must share a dtype");
  if (ctx.is_cuda()) {
    const bool ok = (r.a.dtype == DType::f32 && r.c.dtype == DType::f32) ||
                    (r.a.dtype == DType::bf16 && (r.c.dtype == DType::bf16 || r.c.dtype == DType::f32));
    CHECK(ok, "matmul (CUDA): operands ", dtype_name(r.a.dtype), " with C ", dtype_name(r.c.dtype),
          " is not supported; use f32 operands with f32 C, or bf16 operands with bf16 or f32 C");
  } else {
    CHECK(r.c.dtype == r.a.dtype, "matmul (CPU): C '", r.c.name, "' is ", dtype_name(r.c.dtype),
          " but the operands are ", dtype_name(r.a.dtype), "; the CPU runs all-f32 or all-f64");
    // OpenBLAS here takes 32-bit sizes.
    for (int64_t v : {r.M, r.N, r.K, r.lda, r.ldb, r.ldc})
      CHECK(v <= INT_MAX, "matmul (CPU): size or ld ", v, " exceeds the BLAS int range");
  }
  check_device(ctx.device, {&r.a, &r.b, &r.c, &r.bias});
  return true;
}

inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha,
                 const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void gemv(CBLAS_TRANSPOSE t, int m, int n, float alpha, const float* a, int lda, const float* x, int incx,
                 float beta, float* y) {
  cblas_sgemv(CblasRowMajor, t, m, n, alpha, a, lda, x, incx, beta, y, 1);
}
inline void gemv(CBLAS_TRANSPOSE t, int m, int n, double alpha, const double* a, int lda, const double* x, int incx,
                 double beta, double* y) {
  cblas_dgemv(CblasRowMajor, t, m, n, alpha, a, lda, x, incx, beta, y, 1);
}

// C[1, N] = alpha·op(A)[1, K]·op(B)[K, N] + beta·C as a matrix-vector product: gemv streams op(B)
// once, where gemm first packs all of it (for a decode step's LM head over a 151k vocabulary that
// packing was most of the step).
template <class T>
void matmul_row_cpu(const MatmulArgs& r, const T* a, const T* b, T* c) {
  if (r.beta == 0.0) std::fill(c, c + r.N, T(0));  // C may hold poison; BLAS gemv scales it by beta
  const int incx = r.trans_a ? int(r.lda) : 1;   // op(A) = Aᵀ: A is [K, 1] with row stride lda
  if (r.trans_b) gemv(CblasNoTrans, int(r.N), int(r.K), T(r.alpha), b, int(r.ldb), a, incx, T(r.beta), c);
  else gemv(CblasTrans, int(r.K), int(r.N), T(r.alpha), b, int(r.ldb), a, incx, T(r.beta), c);
}

template <class T>
void matmul_cpu(const MatmulArgs& r) {
  const T* a = r.a.ptr<T>();
  const T* b = r.b.ptr<T>();
  T* c = r.c.ptr<T>();
  const T* bias = r.bias.defined() ? r.bias.ptr<T>() : nullptr;
  const CBLAS_TRANSPOSE ta = r.trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = r.trans_b ? CblasTrans : CblasNoTrans;
  for (int64_t i = 0; i < r.batch; ++i) {
    T* ci = c + i * r.stride_c;
    // BLAS does not read C when beta is 0 (poisoned C stays harmless). T(alpha): the f64 product
    // keeps the double scalars, the f32 one rounds them here.
    if (r.M == 1) matmul_row_cpu<T>(r, a + i * r.stride_a, b + i * r.stride_b, ci);
    else gemm(ta, tb, int(r.M), int(r.N), int(r.K), T(r.alpha), a + i * r.stride_a, int(r.lda),
              b + i * r.stride_b, int(r.ldb), T(r.beta), ci, int(r.ldc));
    if (!bias) continue;
#pragma omp parallel for schedule(static) if (r.M * r.N > 65536)
    for (int64_t m = 0; m < r.M; ++m)
      for (int64_t n = 0; n < r.N; ++n) ci[m * r.ldc + n] += bias[n];
  }
}

// dbias[c] += Σ_r dy[r, c]: rows outer so the inner loop streams a row; double partials.
template <class T>
void bias_grad_cpu(const T* dy, acc_t<T>* dbias, int64_t rows, int64_t cols) {
  const int64_t chunk = 256;
  const int64_t n_chunks = (cols + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t c0 = ch * chunk, c1 = std::min(cols, c0 + chunk);
    std::vector<double> sum(size_t(c1 - c0), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = dy + r * cols;
      for (int64_t c = c0; c < c1; ++c) sum[size_t(c - c0)] += double(row[c]);
    }
    for (int64_t c = c0; c < c1; ++c) dbias[c] += acc_t<T>(sum[size_t(c - c0)]);
  }
}

struct LinearSizes {
  int64_t rows, in, out;
};

LinearSizes linear_sizes(const Tensor& x, const Tensor& w) {
  CHECK(x.defined() && x.ndim >= 1, "linear: x is undefined or has no dims");
  CHECK(w.defined() && w.ndim == 2, "linear: w '", w.name, "' ", w.shape_str(), " must be [out, in]");
  LinearSizes s{0, x.dim(-1), w.dim(0)};
  CHECK(s.in > 0, "linear: x '", x.name, "' ", x.shape_str(), " has an empty last dim");
  CHECK(w.dim(1) == s.in, "linear: w '", w.name, "' ", w.shape_str(), " is [out, in] but x '",
        x.name, "' ", x.shape_str(), " has in=", s.in);
  s.rows = x.numel() / s.in;
  return s;
}

void check_rows(const char* what, const Tensor& t, int64_t rows, int64_t width) {
  CHECK(t.ndim >= 1 && t.dim(-1) == width && t.numel() == rows * width, "linear: ", what, " '",
        t.name, "' ", t.shape_str(), " must be [", rows, ", ", width, "] (leading dims may be split)");
}

}  // namespace

void matmul(Ctx& ctx, const MatmulArgs& args) {
  NVTX_RANGE(ctx, "matmul");
  MatmulArgs r = args;
  if (!validate(ctx, r)) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::matmul(ctx, r));
  dispatch_cpu_float(r.c.dtype, "matmul", [&](auto t) { matmul_cpu<decltype(t)>(r); });
}

void linear_forward(Ctx& ctx, const LinearArgs& a) {
  NVTX_RANGE(ctx, "linear_forward");
  const LinearSizes s = linear_sizes(a.x, a.w);
  CHECK(a.y.defined(), "linear_forward: y is undefined");
  check_rows("y", a.y, s.rows, s.out);
  CHECK(a.x.dtype == a.w.dtype && a.y.dtype == a.x.dtype, "linear_forward: x ",
        dtype_name(a.x.dtype), ", w ", dtype_name(a.w.dtype), ", y ", dtype_name(a.y.dtype),
        " must share a dtype");
  if (a.bias.defined())
    CHECK(a.bias.ndim == 1 && a.bias.dim(0) == s.out, "linear_forward: bias '", a.bias.name, "' ",
          a.bias.shape_str(), " must be [", s.out, "]");
  MatmulArgs m;
  m.c = a.y;
  m.a = a.x;
  m.b = a.w;
  m.bias = a.bias;
  m.M = s.rows, m.N = s.out, m.K = s.in;
  m.trans_b = true;
  m.allow_tf32 = a.allow_tf32;
  matmul(ctx, m);
}

void linear_backward(Ctx& ctx, const LinearBackwardArgs& a) {
  NVTX_RANGE(ctx, "linear_backward");
  const LinearSizes s = linear_sizes(a.x, a.w);
  CHECK(a.dy.defined(), "linear_backward: dy is undefined");
  check_rows("dy", a.dy, s.rows, s.out);
  CHECK(a.dy.dtype == a.x.dtype && a.w.dtype == a.x.dtype, "linear_backward: dy ",
        dtype_name(a.dy.dtype), ", x ", dtype_name(a.x.dtype), ", w ", dtype_name(a.w.dtype),
        " must share a dtype");
  const DType acc = acc_dtype(a.x.dtype);
  if (a.dx.defined()) {
    check_rows("dx", a.dx, s.rows, s.in);
    CHECK(a.dx.dtype == a.x.dtype, "linear_backward: dx is ", dtype_name(a.dx.dtype), ", x is ",
          dtype_name(a.x.dtype));
  }
  if (a.dw.defined()) {
    check_shape(a.dw, {s.out, s.in});
    CHECK(a.dw.dtype == acc, "linear_backward: dw '", a.dw.name, "' is ", dtype_name(a.dw.dtype),
          "; parameter gradients accumulate in ", dtype_name(acc));
  }
  if (a.dbias.defined()) {
    check_shape(a.dbias, {s.out});
    CHECK(a.dbias.dtype == acc, "linear_backward: dbias '", a.dbias.name, "' is ",
          dtype_name(a.dbias.dtype), "; parameter gradients accumulate in ", dtype_name(acc));
  }
  check_device(ctx.device, {&a.dy, &a.x, &a.w, &a.dx, &a.dw, &a.dbias});
  if (s.rows == 0) return;  // no rows: dx is empty and the parameter gradients gain nothing

  if (a.dx.defined()) {  // dX[rows, in] = dY[rows, out] · W[out, in]
    MatmulArgs m;
    m.c = a.dx, m.a = a.dy, m.b = a.w;
    m.M = s.rows, m.N = s.in, m.K = s.out;
    m.beta = a.accumulate_dx ? 1.0 : 0.0;
    m.allow_tf32 = a.allow_tf32;
    matmul(ctx, m);
  }
  if (a.dw.defined()) {  // dW[out, in] += dYᵀ · X, dY stored [rows, out] = K×M
    MatmulArgs m;
    m.c = a.dw, m.a = a.dy, m.b = a.x;
    m.M = s.out, m.N = s.in, m.K = s.rows;
    m.trans_a = true;
    m.beta = 1.0;
    m.allow_tf32 = a.allow_tf32;
    matmul(ctx, m);
  }
  if (a.dbias.defined()) {
    if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::bias_grad(ctx, a.dy, a.dbias, s.rows, s.out));
    dispatch_cpu_float(a.dy.dtype, "linear_backward", [&](auto t) {
      using T = decltype(t);
      bias_grad_cpu<T>(a.dy.ptr<T>(), a.dbias.ptr<acc_t<T>>(), s.rows, s.out);
    });
  }
}

}  // namespace attnlab
