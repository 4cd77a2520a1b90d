#include "core/ops/swiglu.h"

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/swiglu_math.h"

namespace attnlab {

SwigluOperands swiglu_operands(SwigluLayout layout, const Tensor& gate, const Tensor& up,
                               const Tensor& gate_up, int64_t cols) {
  if (layout == SwigluLayout::separate) return {gate.data, up.data, cols};
  char* base = static_cast<char*>(gate_up.data);
  return {base, base + size_t(cols) * dtype_size(gate_up.dtype), 2 * cols};
}

namespace {

// Checks the operands of one layout against h's [rows, I] (and its dtype).
void check_operands(const char* op, SwigluLayout layout, const Tensor& h, const Tensor& gate,
                    const Tensor& up, const Tensor& gate_up) {
  const int64_t rows = h.dim(0), cols = h.dim(1);
  auto same_dtype = [&](const Tensor& t) {
    CHECK(t.dtype == h.dtype, op, ": '", t.name, "' is ", dtype_name(t.dtype), ", '", h.name,
          "' is ", dtype_name(h.dtype));
  };
  if (layout == SwigluLayout::separate) {
    CHECK(gate.defined() && up.defined() && !gate_up.defined(), op,
          ": the separate layout takes gate and up (and no gate_up)");
    check_shape(gate, {rows, cols});
    check_shape(up, {rows, cols});
    same_dtype(gate);
    same_dtype(up);
  } else {
    CHECK(gate_up.defined() && !gate.defined() && !up.defined(), op,
          ": the fused layout takes gate_up [rows, 2I] (and no separate gate/up)");
    check_shape(gate_up, {rows, 2 * cols});
    same_dtype(gate_up);
  }
}

}  // namespace

void swiglu_forward(Ctx& ctx, const SwigluArgs& a) {
  NVTX_RANGE(ctx, "swiglu_forward");
  CHECK(a.h.defined() && a.h.ndim == 2, "swiglu_forward: h must be [rows, I], got ", a.h.shape_str());
  check_operands("swiglu_forward", a.layout, a.h, a.gate, a.up, a.gate_up);
  CHECK(a.layout == SwigluLayout::separate || a.h.data != a.gate_up.data,
        "swiglu_forward: h cannot overwrite gate_up in place (rows of different widths)");
  check_device(ctx.device, {&a.h, &a.gate, &a.up, &a.gate_up});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::swiglu_forward(ctx, a));
  const int64_t rows = a.h.dim(0), cols = a.h.dim(1);
  const SwigluOperands in = swiglu_operands(a.layout, a.gate, a.up, a.gate_up, cols);
  dispatch_cpu_float(a.h.dtype, "swiglu_forward", [&](auto tag) {
    using T = decltype(tag);
    T* h = a.h.ptr<T>();
    const T* gate = static_cast<const T*>(in.gate);
    const T* up = static_cast<const T*>(in.up);
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; ++r) {
      const T *g = gate + r * in.stride, *u = up + r * in.stride;
      T* hr = h + r * cols;
      for (int64_t c = 0; c < cols; ++c) hr[c] = swiglu_value<T>(g[c], u[c]);
    }
  });
}

void swiglu_backward(Ctx& ctx, const SwigluBackwardArgs& a) {
  NVTX_RANGE(ctx, "swiglu_backward");
  CHECK(a.dh.defined() && a.dh.ndim == 2, "swiglu_backward: dh must be [rows, I], got ",
        a.dh.shape_str());
  check_operands("swiglu_backward", a.layout, a.dh, a.gate, a.up, a.gate_up);
  check_operands("swiglu_backward", a.layout, a.dh, a.dgate, a.dup, a.dgate_up);
  check_device(ctx.device, {&a.dh, &a.gate, &a.up, &a.gate_up, &a.dgate, &a.dup, &a.dgate_up});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::swiglu_backward(ctx, a));
  const int64_t rows = a.dh.dim(0), cols = a.dh.dim(1);
  const SwigluOperands in = swiglu_operands(a.layout, a.gate, a.up, a.gate_up, cols);
  const SwigluOperands grad = swiglu_operands(a.layout, a.dgate, a.dup, a.dgate_up, cols);
  dispatch_cpu_float(a.dh.dtype, "swiglu_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* dh = a.dh.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; ++r) {
      const T* g = static_cast<const T*>(in.gate) + r * in.stride;
      const T* u = static_cast<const T*>(in.up) + r * in.stride;
      T* dg = static_cast<T*>(grad.gate) + r * grad.stride;
      T* du = static_cast<T*>(grad.up) + r * grad.stride;
      const T* dhr = dh + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        T da, dup;
        swiglu_grad<T>(g[c], u[c], dhr[c], &da, &dup);
        dg[c] = da;
        du[c] = dup;
      }
    }
  });
}

}  // namespace attnlab
