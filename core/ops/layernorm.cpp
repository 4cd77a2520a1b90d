#include "core/ops/layernorm.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/row_norm.h"
#include "core/ops/row_norm_cpu.h"

namespace attnlab {

namespace {

// Validates everything forward and backward share; returns rows × C.
RowNormShape check_common(const char* op, const Tensor& x, const Tensor& weight, const Tensor& mean,
                          const Tensor& rstd) {
  RowNormShape s = row_norm_shape(op, x);
  const DType at = acc_dtype(x.dtype);
  check_row_norm_tensor(op, mean, s.rows, at, "mean");
  check_row_norm_tensor(op, rstd, s.rows, at, "rstd");
  if (weight.defined()) check_row_norm_tensor(op, weight, s.C, x.dtype, "weight");
  return s;
}

template <class T>
void cpu_forward(const LayerNormArgs& a, RowNormShape s) {
  using A = acc_t<T>;
  const T* x = a.x.ptr<T>();
  const T* w = a.weight.defined() ? a.weight.ptr<T>() : nullptr;
  const T* b = a.bias.defined() ? a.bias.ptr<T>() : nullptr;
  T* y = a.y.ptr<T>();
  A* mean = a.mean.ptr<A>();
  A* rstd = a.rstd.ptr<A>();
  const int64_t C = s.C;
#pragma omp parallel for schedule(static) if (s.rows * C > 65536)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* xr = x + r * C;
    A sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += A(xr[c]);
    const A mu = sum / A(C);
    A sq = 0;  // two passes: the centred sum of squares does not cancel catastrophically
    for (int64_t c = 0; c < C; ++c) sq += (A(xr[c]) - mu) * (A(xr[c]) - mu);
    const A rs = A(1) / std::sqrt(sq / A(C) + A(a.eps));
    mean[r] = mu;
    rstd[r] = rs;
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      A v = (A(xr[c]) - mu) * rs;
      if (w) v *= A(w[c]);
      if (b) v += A(b[c]);
      yr[c] = T(v);
    }
  }
}

template <class T>
void cpu_backward(const LayerNormBackwardArgs& a, RowNormShape s) {
  using A = acc_t<T>;
  const T* x = a.x.ptr<T>();
  const T* dy = a.dy.ptr<T>();
  const T* w = a.weight.defined() ? a.weight.ptr<T>() : nullptr;
  const A* mean = a.mean.ptr<A>();
  const A* rstd = a.rstd.ptr<A>();
  const int64_t C = s.C, rows = s.rows;
  if (a.dx.defined()) {
    T* dx = a.dx.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * C, *gr = dy + r * C;
      const A mu = mean[r], rs = rstd[r];
      A sum_g = 0, sum_gx = 0;
      for (int64_t c = 0; c < C; ++c) {
        const A g = A(gr[c]) * (w ? A(w[c]) : A(1));
        sum_g += g;
        sum_gx += g * (A(xr[c]) - mu) * rs;
      }
      const A mean_g = sum_g / A(C), mean_gx = sum_gx / A(C);
      T* dxr = dx + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const A g = A(gr[c]) * (w ? A(w[c]) : A(1));
        const A v = rs * (g - mean_g - (A(xr[c]) - mu) * rs * mean_gx);
        dxr[c] = a.accumulate_dx ? T(A(dxr[c]) + v) : T(v);
      }
    }
  }
  if (a.dweight.defined())
    add_column_sums(a.dweight.ptr<A>(), rows, C, [&](int64_t r, int64_t c) {
      return A(dy[r * C + c]) * (A(x[r * C + c]) - mean[r]) * rstd[r];
    });
  if (a.dbias.defined())
    add_column_sums(a.dbias.ptr<A>(), rows, C, [&](int64_t r, int64_t c) { return A(dy[r * C + c]); });
}

}  // namespace

void layernorm_forward(Ctx& ctx, const LayerNormArgs& a) {
  NVTX_RANGE(ctx, "layernorm_forward");
  const char* op = "layernorm_forward";
  RowNormShape s = check_common(op, a.x, a.weight, a.mean, a.rstd);
  check_row_norm_tensor(op, a.y, s.rows * s.C, a.x.dtype, "y");
  if (a.bias.defined()) check_row_norm_tensor(op, a.bias, s.C, a.x.dtype, "bias");
  CHECK(a.eps >= 0, op, ": eps must be >= 0, got ", a.eps);
  check_device(ctx.device, {&a.y, &a.mean, &a.rstd, &a.x, &a.weight, &a.bias});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::layernorm_forward(ctx, a));
  dispatch_cpu_float(a.x.dtype, op, [&](auto t) { cpu_forward<decltype(t)>(a, s); });
}

void layernorm_backward(Ctx& ctx, const LayerNormBackwardArgs& a) {
  NVTX_RANGE(ctx, "layernorm_backward");
  const char* op = "layernorm_backward";
  RowNormShape s = check_common(op, a.x, a.weight, a.mean, a.rstd);
  check_row_norm_tensor(op, a.dy, s.rows * s.C, a.x.dtype, "dy");
  if (a.dx.defined()) {
    check_row_norm_tensor(op, a.dx, s.rows * s.C, a.x.dtype, "dx");
    CHECK(a.dx.data != a.dy.data, op, ": dx must not alias dy");
  }
  const DType at = acc_dtype(a.x.dtype);
  if (a.dweight.defined()) {
    CHECK(a.weight.defined(), op, ": dweight is given but the forward had no weight");
    check_row_norm_tensor(op, a.dweight, s.C, at, "dweight");
  }
  if (a.dbias.defined()) check_row_norm_tensor(op, a.dbias, s.C, at, "dbias");
  check_device(ctx.device, {&a.dx, &a.dweight, &a.dbias, &a.dy, &a.x, &a.weight, &a.mean, &a.rstd, &a.scratch});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::layernorm_backward(ctx, a));
  dispatch_cpu_float(a.x.dtype, op, [&](auto t) { cpu_backward<decltype(t)>(a, s); });
}

size_t layernorm_backward_scratch_floats(const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  if (!ctx.is_cuda()) return 0;
#if ATTNLAB_WITH_CUDA
  return cuda::layernorm_backward_scratch_floats(ctx, dt, rows, C);
#else
  FAIL_WITH("layernorm: a CUDA context reached an op but attnlab was built without CUDA");
#endif
}

}  // namespace attnlab
