#include "optim/adamw.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

template <class A>
AdamWCoef<A> adamw_coef(const AdamWHyper& h) {
  const double t = double(h.step);
  AdamWCoef<A> c;
  c.beta1 = A(h.beta1);
  c.one_minus_beta1 = A(1.0 - h.beta1);
  c.beta2 = A(h.beta2);
  c.one_minus_beta2 = A(1.0 - h.beta2);
  c.eps = A(h.eps);
  c.decay_factor = A(1.0 - h.lr * h.weight_decay);
  c.step_size = A(h.lr / (1.0 - std::pow(h.beta1, t)));
  c.sqrt_bc2 = A(std::sqrt(1.0 - std::pow(h.beta2, t)));
  return c;
}
template AdamWCoef<float> adamw_coef<float>(const AdamWHyper&);
template AdamWCoef<double> adamw_coef<double>(const AdamWHyper&);

namespace {

void check_hyper(const AdamWHyper& h) {
  CHECK(h.step >= 1, "adamw: the step count t is 1-based, got ", h.step);
  CHECK(h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1, "adamw: betas must lie in [0, 1), got (",
        h.beta1, ", ", h.beta2, ")");
  CHECK(h.eps > 0, "adamw: eps must be > 0, got ", h.eps);
  CHECK(std::isfinite(h.lr) && std::isfinite(h.weight_decay), "adamw: lr ", h.lr, " / weight decay ",
        h.weight_decay, " must be finite");
}

void check_controls(const Ctx& ctx, const AdamWArgs& a, DType dtype) {
  check_hyper(a.hyper);
  if (a.grad_scale.defined()) {
    check_shape(a.grad_scale, {1});
    CHECK(a.grad_scale.dtype == dtype, "adamw: grad_scale '", a.grad_scale.name, "' is ",
          dtype_name(a.grad_scale.dtype), ", the parameters are ", dtype_name(dtype));
  }
  if (a.skip.defined()) {
    check_shape(a.skip, {1});
    CHECK(a.skip.dtype == DType::i32, "adamw: skip '", a.skip.name, "' must be i32, got ",
          dtype_name(a.skip.dtype));
  }
  check_device(ctx.device, {&a.grad_scale, &a.skip});
}

template <class A>
void step_cpu(const AdamWCoef<A>& c, A scale, const ParamSlot& s) {
  A* p = s.param.ptr<A>();
  A* m = s.m.ptr<A>();
  A* v = s.v.ptr<A>();
  const A* g = s.grad.ptr<A>();
  bf16* w = s.param_bf16.defined() ? s.param_bf16.ptr<bf16>() : nullptr;
  const int64_t n = s.grad.numel();
  const bool decay = s.decay;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    adamw_update(p[i], m[i], v[i], A(g[i] * scale), c, decay);
    if (w) w[i] = float_to_bf16(float(p[i]));
  }
}

template <class A>
void run_cpu(const AdamWArgs& a, const std::vector<const ParamSlot*>& slots) {
  if (a.skip.defined() && a.skip.ptr<int32_t>()[0] != 0) return;
  const A scale = a.grad_scale.defined() ? a.grad_scale.ptr<A>()[0] : A(1);
  const AdamWCoef<A> c = adamw_coef<A>(a.hyper);
  for (const ParamSlot* s : slots) step_cpu<A>(c, scale, *s);
}

}  // namespace

void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamSlot& slot) {
  NVTX_RANGE(ctx, "adamw_step");
  CHECK(slot.grad.defined(), "adamw_step: the gradient is undefined");
  check_param_slot(slot, 0, slot.grad.dtype, ctx.device);
  CHECK(slot.param.defined(), "adamw_step: '", slot.grad.name, "' has no param/m/v to update");
  check_controls(ctx, a, slot.grad.dtype);
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::adamw_step(ctx, a, slot));
  dispatch_cpu_float(slot.grad.dtype, "adamw_step", [&](auto t) {
    run_cpu<decltype(t)>(a, {&slot});
  });
}

void adamw_step(Ctx& ctx, const AdamWArgs& a, const ParamTable& table) {
  NVTX_RANGE(ctx, "adamw_step_multi");
  CHECK(table.size() > 0, "adamw_step: empty parameter table");
  CHECK(table.device() == ctx.device, "adamw_step: the table was built for ",
        device_name(table.device()), ", the context is ", device_name(ctx.device));
  CHECK(table.has_optimizer_state(), "adamw_step: every slot of the table needs param, m and v");
  check_controls(ctx, a, table.dtype());
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::adamw_step(ctx, a, table));
  std::vector<const ParamSlot*> slots;
  for (const ParamSlot& s : table.slots()) slots.push_back(&s);
  dispatch_cpu_float(table.dtype(), "adamw_step", [&](auto t) { run_cpu<decltype(t)>(a, slots); });
}

}  // namespace attnlab
