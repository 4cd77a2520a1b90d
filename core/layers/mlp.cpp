#include "core/layers/mlp.h"

#include "core/nvtx.h"
#include "core/ops/swiglu.h"

namespace attnlab {

Mlp Mlp::gelu(const std::string& name, Linear fc, Linear proj, GeluKind kind, double inner_dropout) {
  CHECK(fc.out_features() == proj.in_features() && proj.out_features() == fc.in_features(), "MLP '", name,
        "': c_fc is ", fc.in_features(), "→", fc.out_features(), " but c_proj is ", proj.in_features(), "→",
        proj.out_features());
  Mlp m;
  m.name_ = LayerName(name);
  m.kind_ = kind;
  m.in_ = fc;
  m.out_ = proj;
  m.drop_ = Dropout(name + ".drop", inner_dropout);
  return m;
}

Mlp Mlp::swiglu(const std::string& name, Linear gate, Linear up, Linear down) {
  CHECK(gate.out_features() == up.out_features() && gate.in_features() == up.in_features() &&
            down.in_features() == gate.out_features() && down.out_features() == gate.in_features(),
        "MLP '", name, "': gate ", gate.in_features(), "→", gate.out_features(), ", up ", up.in_features(), "→",
        up.out_features(), ", down ", down.in_features(), "→", down.out_features(), " do not fit together");
  Mlp m;
  m.name_ = LayerName(name);
  m.swiglu_ = true;
  m.in_ = gate;
  m.up_ = up;
  m.out_ = down;
  return m;
}

void Mlp::plan(ActivationPlanner& p, DType dt, int64_t B, int64_t T) {
  // [rows, I]: swiglu takes 2-D tensors, linear any leading dims.
  const int64_t I = hidden(), rows = B * T;
  pre_ = p.saved(dt, {rows, I}, name_.name + (swiglu_ ? ".gate" : ".c_fc_out"));
  act_ = p.saved(dt, {rows, I}, name_.name + (swiglu_ ? ".h" : ".gelu_out"));
  up_out_ = swiglu_ ? p.saved(dt, {rows, I}, name_.name + ".up") : Tensor();
  dact_ = p.scratch("mlp.d_act", dt, {rows, I});
  dpre_ = swiglu_ ? p.scratch("mlp.d_gate", dt, {rows, I}) : Tensor();
  dup_ = swiglu_ ? p.scratch("mlp.d_up", dt, {rows, I}) : Tensor();
}

void Mlp::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  run(ctx, x, y, pre_, act_, up_out_, &drop_);
}

void Mlp::run(Ctx& ctx, const Tensor& x, const Tensor& y, const Tensor& pre, const Tensor& act,
              const Tensor& up_out, Dropout* drop) const {
  in_.forward(ctx, x, pre);
  if (swiglu_) {
    up_.forward(ctx, x, up_out);
    SwigluArgs a;
    a.h = act;
    a.gate = pre;
    a.up = up_out;
    swiglu_forward(ctx, a);
  } else {
    gelu_forward(ctx, {act, pre, kind_});
    // In place: c_proj reads (and its backward keeps) the dropped activation.
    if (drop) drop->forward(ctx, act);
  }
  out_.forward(ctx, act, y);
}

size_t Mlp::inference_bytes(DType dt, int64_t rows) const {
  return (swiglu_ ? 3 : 2) * Arena::aligned(size_t(rows * hidden()) * dtype_size(dt));
}

void Mlp::forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const {
  NVTX_RANGE(ctx, name_.forward.c_str());
  const int64_t rows = x.numel() / x.dim(x.ndim - 1), I = hidden();
  const DType dt = x.dtype;
  Tensor pre = scratch.alloc(dt, {rows, I}, "mlp.inference_pre");
  Tensor act = scratch.alloc(dt, {rows, I}, "mlp.inference_act");
  Tensor up = swiglu_ ? scratch.alloc(dt, {rows, I}, "mlp.inference_up") : Tensor();
  run(ctx, x, y, pre, act, up, nullptr);  // no dropout in inference
}

void Mlp::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  out_.backward(ctx, dy, act_, dact_, false);
  if (swiglu_) {
    SwigluBackwardArgs a;
    a.dgate = dpre_;
    a.dup = dup_;
    a.dh = dact_;
    a.gate = pre_;
    a.up = up_out_;
    swiglu_backward(ctx, a);
    in_.backward(ctx, dpre_, x, dx, false);
    up_.backward(ctx, dup_, x, dx, true);
  } else {
    if (drop_.applied()) drop_.backward(ctx, dact_, dact_);
    // In place: gelu_backward reads each dy element before writing it.
    gelu_backward(ctx, {dact_, dact_, pre_, kind_});
    in_.backward(ctx, dact_, x, dx, false);
  }
}

}  // namespace attnlab
