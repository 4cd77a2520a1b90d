#include "core/ops/gelu.h"

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/gelu_math.h"

namespace attnlab {

const char* gelu_kind_name(GeluKind k) { return k == GeluKind::erf_exact ? "erf" : "tanh"; }

static void check_same(const char* op, const Tensor& x, const Tensor& ref) {
  CHECK(x.defined(), op, ": tensor '", x.name, "' is not set");
  CHECK(x.numel() == ref.numel() && x.dtype == ref.dtype, op, ": '", x.name, "' ",
        dtype_name(x.dtype), x.shape_str(), " does not match '", ref.name, "' ",
        dtype_name(ref.dtype), ref.shape_str());
}

void gelu_forward(Ctx& ctx, const GeluArgs& a) {
  NVTX_RANGE(ctx, "gelu_forward");
  check_same("gelu_forward", a.out, a.out);
  check_same("gelu_forward", a.x, a.out);
  check_device(ctx.device, {&a.out, &a.x});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::gelu_forward(ctx, a));
  dispatch_cpu_float(a.out.dtype, "gelu_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.x.ptr<T>();
    T* out = a.out.ptr<T>();
    const int64_t n = a.out.numel();
    if (a.kind == GeluKind::erf_exact) {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) out[i] = gelu_erf<T>(x[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh<T>(x[i]);
    }
  });
}

void gelu_backward(Ctx& ctx, const GeluBackwardArgs& a) {
  NVTX_RANGE(ctx, "gelu_backward");
  check_same("gelu_backward", a.dx, a.dx);
  check_same("gelu_backward", a.dy, a.dx);
  check_same("gelu_backward", a.x, a.dx);
  check_device(ctx.device, {&a.dx, &a.dy, &a.x});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::gelu_backward(ctx, a));
  dispatch_cpu_float(a.dx.dtype, "gelu_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *x = a.x.ptr<T>(), *dy = a.dy.ptr<T>();
    T* dx = a.dx.ptr<T>();
    const int64_t n = a.dx.numel();
    if (a.kind == GeluKind::erf_exact) {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_erf_grad<T>(x[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_tanh_grad<T>(x[i]);
    }
  });
}

}  // namespace attnlab
