#include "core/ops/dropout.h"

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/dropout_math.h"

namespace attnlab {

namespace {

void check_args(const char* op, const Tensor& out, const Tensor& in, double p) {
  CHECK(p >= 0.0 && p < 1.0, op, ": p must be in [0, 1), got ", p);
  CHECK(in.defined() && out.defined(), op, ": input and output must be given");
  CHECK(out.numel() == in.numel() && out.dtype == in.dtype, op, ": '", out.name, "' ", dtype_name(out.dtype),
        out.shape_str(), " does not match '", in.name, "' ", dtype_name(in.dtype), in.shape_str());
}

void apply(Ctx& ctx, const char* op, const Tensor& out, const Tensor& in, double p, uint64_t rng_offset) {
  check_args(op, out, in, p);
  check_device(ctx.device, {&out, &in});
  if (in.numel() == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::dropout_apply(ctx, out, in, p, rng_offset));
  dispatch_cpu_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    const T* x = in.ptr<T>();
    T* y = out.ptr<T>();
    const int64_t n = in.numel();
    const uint32_t threshold = dropout_threshold(p);
    const T scale = T(1.0 / (1.0 - p));
    const uint64_t seed = ctx.seed;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i)
      y[i] = dropout_keeps(philox_u32(seed, rng_offset, uint64_t(i)), threshold) ? x[i] * scale : T(0);
  });
}

}  // namespace

void dropout_forward(Ctx& ctx, const DropoutArgs& a) {
  NVTX_RANGE(ctx, "dropout_forward");
  apply(ctx, "dropout_forward", a.y, a.x, a.p, a.rng_offset);
}

void dropout_backward(Ctx& ctx, const DropoutBackwardArgs& a) {
  NVTX_RANGE(ctx, "dropout_backward");
  apply(ctx, "dropout_backward", a.dx, a.dy, a.p, a.rng_offset);
}

}  // namespace attnlab
