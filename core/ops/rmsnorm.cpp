#include "core/ops/rmsnorm.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/row_norm.h"
#include "core/ops/row_norm_cpu.h"

namespace attnlab {

namespace {

RowNormShape check_common(const char* op, const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  RowNormShape s = row_norm_shape(op, x);
  check_row_norm_tensor(op, rstd, s.rows, acc_dtype(x.dtype), "rstd");
  if (weight.defined()) check_row_norm_tensor(op, weight, s.C, x.dtype, "weight");
  return s;
}

template <class T>
void cpu_forward(const RmsNormArgs& a, RowNormShape s) {
  using A = acc_t<T>;
  const T* x = a.x.ptr<T>();
  const T* w = a.weight.defined() ? a.weight.ptr<T>() : nullptr;
  T* y = a.y.ptr<T>();
  A* rstd = a.rstd.ptr<A>();
  const int64_t C = s.C;
#pragma omp parallel for schedule(static) if (s.rows * C > 65536)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* xr = x + r * C;
    A sq = 0;
    for (int64_t c = 0; c < C; ++c) sq += A(xr[c]) * A(xr[c]);
    const A rs = A(1) / std::sqrt(sq / A(C) + A(a.eps));
    rstd[r] = rs;
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const T xh = T(A(xr[c]) * rs);  // HF: x̂ cast back to the input dtype before the weight
      yr[c] = w ? T(A(w[c]) * A(xh)) : xh;
    }
  }
}

template <class T>
void cpu_backward(const RmsNormBackwardArgs& a, RowNormShape s) {
  using A = acc_t<T>;
  const T* x = a.x.ptr<T>();
  const T* dy = a.dy.ptr<T>();
  const T* w = a.weight.defined() ? a.weight.ptr<T>() : nullptr;
  const A* rstd = a.rstd.ptr<A>();
  const int64_t C = s.C, rows = s.rows;
  if (a.dx.defined()) {
    T* dx = a.dx.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * C, *gr = dy + r * C;
      const A rs = rstd[r];
      A sum_gx = 0;  // Σ g·x̂
      for (int64_t c = 0; c < C; ++c) sum_gx += A(gr[c]) * (w ? A(w[c]) : A(1)) * A(xr[c]) * rs;
      const A mean_gx = sum_gx / A(C);
      T* dxr = dx + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const A g = A(gr[c]) * (w ? A(w[c]) : A(1));
        const A v = rs * (g - A(xr[c]) * rs * mean_gx);  // = r·g − x·r³·mean(g·x)
        dxr[c] = a.accumulate_dx ? T(A(dxr[c]) + v) : T(v);
      }
    }
  }
  if (!a.dweight.defined()) return;
  add_column_sums(a.dweight.ptr<A>(), rows, C,
                  [&](int64_t r, int64_t c) { return A(dy[r * C + c]) * A(x[r * C + c]) * rstd[r]; });
}

}  // namespace

void rmsnorm_forward(Ctx& ctx, const RmsNormArgs& a) {
  NVTX_RANGE(ctx, "rmsnorm_forward");
  const char* op = "rmsnorm_forward";
  RowNormShape s = check_common(op, a.x, a.weight, a.rstd);
  check_row_norm_tensor(op, a.y, s.rows * s.C, a.x.dtype, "y");
  CHECK(a.eps >= 0, op, ": eps must be >= 0, got ", a.eps);
  check_device(ctx.device, {&a.y, &a.rstd, &a.x, &a.weight});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::rmsnorm_forward(ctx, a));
  dispatch_cpu_float(a.x.dtype, op, [&](auto t) { cpu_forward<decltype(t)>(a, s); });
}

void rmsnorm_backward(Ctx& ctx, const RmsNormBackwardArgs& a) {
  NVTX_RANGE(ctx, "rmsnorm_backward");
  const char* op = "rmsnorm_backward";
  RowNormShape s = check_common(op, a.x, a.weight, a.rstd);
  check_row_norm_tensor(op, a.dy, s.rows * s.C, a.x.dtype, "dy");
  if (a.dx.defined()) {
    check_row_norm_tensor(op, a.dx, s.rows * s.C, a.x.dtype, "dx");
    CHECK(a.dx.data != a.dy.data, op, ": dx must not alias dy");
  }
  if (a.dweight.defined()) {
    CHECK(a.weight.defined(), op, ": dweight is given but the forward had no weight");
    check_row_norm_tensor(op, a.dweight, s.C, acc_dtype(a.x.dtype), "dweight");
  }
  check_device(ctx.device, {&a.dx, &a.dweight, &a.dy, &a.x, &a.weight, &a.rstd, &a.scratch});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::rmsnorm_backward(ctx, a));
  dispatch_cpu_float(a.x.dtype, op, [&](auto t) { cpu_backward<decltype(t)>(a, s); });
}

size_t rmsnorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  if (!ctx.is_cuda()) return 0;
#if ATTNLAB_WITH_CUDA
  return cuda::rmsnorm_backward_scratch_floats(ctx, dt, rows, C);
#else
  FAIL_WITH("rmsnorm: a CUDA context reached an op but attnlab was built without CUDA");
#endif
}

}  // namespace attnlab
