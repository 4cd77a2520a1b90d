#include "core/ops/score_controller.h"

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/score_controller_math.h"

namespace attnlab {

const char* controller_kind_name(ControllerKind k) {
  return k == ControllerKind::additive ? "additive" : "multiplicative";
}

namespace {

void check(const char* op, const Tensor& z, const Tensor& out, const char* out_name) {
  CHECK(z.defined() && z.ndim == 3, op, ": z must be [B, T, H], got ", z.defined() ? z.shape_str() : "undefined");
  CHECK(out.defined(), op, ": ", out_name, " is required");
  check_shape(out, {z.dim(0), z.dim(2), z.dim(1)});
  CHECK(out.dtype == acc_dtype(z.dtype), op, ": ", out_name, " must be ", dtype_name(acc_dtype(z.dtype)), ", got ",
        dtype_name(out.dtype));
}

}  // namespace

void score_controller_forward(Ctx& ctx, const ScoreControllerArgs& a) {
  NVTX_RANGE(ctx, "score_controller_forward");
  check("score_controller_forward", a.z, a.out, "out");
  check_device(ctx.device, {&a.z, &a.out});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::score_controller_forward(ctx, a));
  const int64_t B = a.z.dim(0), T = a.z.dim(1), H = a.z.dim(2);
  const bool mul = a.kind == ControllerKind::multiplicative;
  dispatch_cpu_float(a.z.dtype, "score_controller_forward", [&](auto tag) {
    using F = decltype(tag);
    const F* z = a.z.ptr<F>();
    F* out = a.out.ptr<F>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) out[(b * H + h) * T + t] = controller_value<F>(z[(b * T + t) * H + h], mul);
  });
}

void score_controller_backward(Ctx& ctx, const ScoreControllerBackwardArgs& a) {
  NVTX_RANGE(ctx, "score_controller_backward");
  check("score_controller_backward", a.z, a.dout, "dout");
  CHECK(a.dz.defined() && a.dz.dtype == a.z.dtype, "score_controller_backward: dz must be ", dtype_name(a.z.dtype));
  check_shape(a.dz, {a.z.dim(0), a.z.dim(1), a.z.dim(2)});
  check_device(ctx.device, {&a.z, &a.dout, &a.dz});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::score_controller_backward(ctx, a));
  const int64_t B = a.z.dim(0), T = a.z.dim(1), H = a.z.dim(2);
  const bool mul = a.kind == ControllerKind::multiplicative;
  dispatch_cpu_float(a.z.dtype, "score_controller_backward", [&](auto tag) {
    using F = decltype(tag);
    const F* z = a.z.ptr<F>();
    const F* dout = a.dout.ptr<F>();
    F* dz = a.dz.ptr<F>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
          const int64_t i = (b * T + t) * H + h;
          dz[i] = controller_grad<F>(z[i], dout[(b * H + h) * T + t], mul);
        }
  });
}

}  // namespace attnlab
