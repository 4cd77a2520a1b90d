#include "core/ops/scale.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/scale_math.h"

namespace attnlab {

namespace {

// out and in are both n elements of one dtype; they are the same memory or do not overlap
// (an elementwise op run in parallel cannot read an element another thread already wrote).
void check_pair(const char* op, const char* out_role, const Tensor& out, const char* in_role, const Tensor& in) {
  CHECK(out.defined(), op, ": ", out_role, " is undefined");
  CHECK(in.defined(), op, ": ", in_role, " is undefined");
  CHECK(out.numel() == in.numel(), op, ": ", out_role, " '", out.name, "' ", out.shape_str(), " and ", in_role,
        " '", in.name, "' ", in.shape_str(), " must hold the same number of elements");
  CHECK(out.dtype == in.dtype, op, ": ", out_role, " '", out.name, "' is ", dtype_name(out.dtype), " but ",
        in_role, " '", in.name, "' is ", dtype_name(in.dtype), "; they must share a dtype");
  const char* o = static_cast<const char*>(out.data);
  const char* i = static_cast<const char*>(in.data);
  const bool disjoint = o + out.bytes() <= i || i + in.bytes() <= o;
  CHECK(o == i || disjoint || out.numel() == 0, op, ": ", out_role, " '", out.name, "' and ", in_role, " '",
        in.name, "' overlap without being the same elements; pass the same tensor or separate memory");
}

void check_scalars(const char* op, double alpha, double beta) {
  CHECK(std::isfinite(alpha) && std::isfinite(beta), op, ": alpha (", alpha, ") and beta (", beta,
        ") must be finite");
}

template <class T>
void scale_cpu(const Tensor& y, const Tensor& x, double alpha, double beta) {
  T* out = y.ptr<T>();
  const T* in = x.ptr<T>();
  const T al = T(alpha), be = T(beta);  // f32 rounds the scalars here, f64 keeps them
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = scale_value<T>(in[i], be == T(0) ? T(0) : out[i], al, be);
}

void run_scale(Ctx& ctx, const char* op, const Tensor& y, const Tensor& x, double alpha, double beta) {
  check_device(ctx.device, {&y, &x});
  if (y.numel() == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::scale(ctx, y, x, alpha, beta));
  dispatch_cpu_float(y.dtype, op, [&](auto t) { scale_cpu<decltype(t)>(y, x, alpha, beta); });
}

}  // namespace

void scale_forward(Ctx& ctx, const ScaleArgs& a) {
  NVTX_RANGE(ctx, "scale_forward");
  check_pair("scale_forward", "y", a.y, "x", a.x);
  check_scalars("scale_forward", a.alpha, a.beta);
  run_scale(ctx, "scale_forward", a.y, a.x, a.alpha, a.beta);
}

void scale_backward(Ctx& ctx, const ScaleBackwardArgs& a) {
  NVTX_RANGE(ctx, "scale_backward");
  check_pair("scale_backward", "dx", a.dx, "dy", a.dy);
  check_scalars("scale_backward", a.alpha, 0.0);
  run_scale(ctx, "scale_backward", a.dx, a.dy, a.alpha, a.accumulate_dx ? 1.0 : 0.0);
}

}  // namespace attnlab
