#include "core/ops/simple_rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/row_norm.h"
#include "core/ops/row_norm_cpu.h"

namespace attnlab {

namespace {

RowNormShape check_common(const char* op, const Tensor& x, const Tensor& weight, const Tensor& den) {
  RowNormShape s = row_norm_shape(op, x);
  check_row_norm_tensor(op, den, s.rows, acc_dtype(x.dtype), "den");
  check_row_norm_tensor(op, weight, s.C, x.dtype, "weight");
  return s;
}

template <class T>
void cpu_forward(const SimpleRmsNormArgs& a, RowNormShape s) {
  using A = acc_t<T>;
  const T* x = a.x.ptr<T>();
  const T* w = a.weight.ptr<T>();
  T* y = a.y.ptr<T>();
  A* den = a.den.ptr<A>();
  const int64_t C = s.C;
#pragma omp parallel for schedule(static) if (s.rows * C > 65536)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* xr = x + r * C;
    A sq = 0;
    for (int64_t c = 0; c < C; ++c) sq += A(xr[c]) * A(xr[c]);
    const A d = std::sqrt(sq) / std::sqrt(A(C)) + A(a.eps);
    den[r] = d;
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = T(A(w[c]) * A(xr[c]) / d);
  }
}

template <class T>
void cpu_backward(const SimpleRmsNormBackwardArgs& a, RowNormShape s) {
  using A = acc_t<T>;
  const T* x = a.x.ptr<T>();
  const T* dy = a.dy.ptr<T>();
  const T* w = a.weight.ptr<T>();
  const A* den = a.den.ptr<A>();
  const int64_t C = s.C, rows = s.rows;
  if (a.dx.defined()) {
    T* dx = a.dx.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * C, *gr = dy + r * C;
      const A d = den[r], rho = d - A(a.eps);
      A sum_gx = 0;
      for (int64_t c = 0; c < C; ++c) sum_gx += A(w[c]) * A(gr[c]) * A(xr[c]);
      const A k = rho > A(0) ? sum_gx / (d * d * A(C) * rho) : A(0);
      T* dxr = dx + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const A v = A(w[c]) * A(gr[c]) / d - k * A(xr[c]);
        dxr[c] = a.accumulate_dx ? T(A(dxr[c]) + v) : T(v);
      }
    }
  }
  if (!a.dweight.defined()) return;
  add_column_sums(a.dweight.ptr<A>(), rows, C,
                  [&](int64_t r, int64_t c) { return A(dy[r * C + c]) * A(x[r * C + c]) / den[r]; });
}

}  // namespace

void simple_rmsnorm_forward(Ctx& ctx, const SimpleRmsNormArgs& a) {
  NVTX_RANGE(ctx, "simple_rmsnorm_forward");
  const char* op = "simple_rmsnorm_forward";
  RowNormShape s = check_common(op, a.x, a.weight, a.den);
  check_row_norm_tensor(op, a.y, s.rows * s.C, a.x.dtype, "y");
  CHECK(a.eps > 0, op, ": eps must be > 0 (it keeps a zero row finite), got ", a.eps);
  check_device(ctx.device, {&a.y, &a.den, &a.x, &a.weight});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::simple_rmsnorm_forward(ctx, a));
  dispatch_cpu_float(a.x.dtype, op, [&](auto t) { cpu_forward<decltype(t)>(a, s); });
}

void simple_rmsnorm_backward(Ctx& ctx, const SimpleRmsNormBackwardArgs& a) {
  NVTX_RANGE(ctx, "simple_rmsnorm_backward");
  const char* op = "simple_rmsnorm_backward";
  RowNormShape s = check_common(op, a.x, a.weight, a.den);
  check_row_norm_tensor(op, a.dy, s.rows * s.C, a.x.dtype, "dy");
  if (a.dx.defined()) {
    check_row_norm_tensor(op, a.dx, s.rows * s.C, a.x.dtype, "dx");
    CHECK(a.dx.data != a.dy.data, op, ": dx must not alias dy");
  }
  if (a.dweight.defined()) check_row_norm_tensor(op, a.dweight, s.C, acc_dtype(a.x.dtype), "dweight");
  check_device(ctx.device, {&a.dx, &a.dweight, &a.dy, &a.x, &a.weight, &a.den, &a.scratch});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::simple_rmsnorm_backward(ctx, a));
  dispatch_cpu_float(a.x.dtype, op, [&](auto t) { cpu_backward<decltype(t)>(a, s); });
}

size_t simple_rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  if (!ctx.is_cuda()) return 0;
#if ATTNLAB_WITH_CUDA
  return cuda::simple_rmsnorm_backward_scratch_floats(ctx, dt, rows, C);
#else
  FAIL_WITH("simple_rmsnorm: a CUDA context reached an op but attnlab was built without CUDA");
#endif
}

}  // namespace attnlab
