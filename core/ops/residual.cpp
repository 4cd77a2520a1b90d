#include "core/ops/residual.h"

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

static void check_same(const Tensor& x, const Tensor& ref) {
  CHECK(x.numel() == ref.numel() && x.dtype == ref.dtype, "residual: '", x.name, "' ",
        dtype_name(x.dtype), x.shape_str(), " does not match '", ref.name, "' ",
        dtype_name(ref.dtype), ref.shape_str());
}

void residual_forward(Ctx& ctx, const ResidualArgs& a) {
  NVTX_RANGE(ctx, "residual_forward");
  check_same(a.a, a.out);
  check_same(a.b, a.out);
  check_device(ctx.device, {&a.out, &a.a, &a.b});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::residual_forward(ctx, a));
  dispatch_cpu_float(a.out.dtype, "residual_forward", [&](auto t) {
    using T = decltype(t);
    const T *x = a.a.ptr<T>(), *y = a.b.ptr<T>();
    T* o = a.out.ptr<T>();
    const int64_t n = a.out.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
  });
}

void residual_backward(Ctx& ctx, const ResidualBackwardArgs& a) {
  NVTX_RANGE(ctx, "residual_backward");
  if (a.da.defined()) check_same(a.da, a.dout);
  if (a.db.defined()) check_same(a.db, a.dout);
  check_device(ctx.device, {&a.dout, &a.da, &a.db});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::residual_backward(ctx, a));
  dispatch_cpu_float(a.dout.dtype, "residual_backward", [&](auto t) {
    using T = decltype(t);
    const T* g = a.dout.ptr<T>();
    const int64_t n = a.dout.numel();
    for (const Tensor* d : {&a.da, &a.db}) {
      if (!d->defined()) continue;
      T* p = d->ptr<T>();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) p[i] += g[i];
    }
  });
}

}  // namespace attnlab
