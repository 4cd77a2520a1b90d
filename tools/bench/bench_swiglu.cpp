#include "core/memory.h"
#include "core/ops/swiglu.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

struct Tensors {
  Buffer gate, up, gate_up, h, dh, dgate, dup, dgate_up;
  SwigluArgs fwd() const {
    return gate_up.t().defined() ? SwigluArgs{.h = h.t(), .gate_up = gate_up.t(), .layout = SwigluLayout::fused}
                                 : SwigluArgs{.h = h.t(), .gate = gate.t(), .up = up.t()};
  }
  SwigluBackwardArgs bwd() const {
    if (gate_up.t().defined())
      return {.dgate_up = dgate_up.t(), .dh = dh.t(), .gate_up = gate_up.t(), .layout = SwigluLayout::fused};
    return {.dgate = dgate.t(), .dup = dup.t(), .dh = dh.t(), .gate = gate.t(), .up = up.t()};
  }
};

// gate_up holds [rows, 2I] values; the separate layout splits each row in two.
Tensors make(Ctx& c, DType dt, SwigluLayout layout, int64_t rows, int64_t cols, const std::vector<double>& gate_up,
             const std::vector<double>& dh) {
  Tensors t;
  const Device dev = c.device;
  t.h = Buffer(dev, dt, {rows, cols});
  t.dh = upload(c, dt, {rows, cols}, dh);
  if (layout == SwigluLayout::fused) {
    t.gate_up = upload(c, dt, {rows, 2 * cols}, gate_up);
    t.dgate_up = Buffer(dev, dt, {rows, 2 * cols});
    return t;
  }
  std::vector<double> g(size_t(rows * cols)), u(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      g[size_t(r * cols + k)] = gate_up[size_t(r * 2 * cols + k)];
      u[size_t(r * cols + k)] = gate_up[size_t(r * 2 * cols + cols + k)];
    }
  t.gate = upload(c, dt, {rows, cols}, g);
  t.up = upload(c, dt, {rows, cols}, u);
  t.dgate = Buffer(dev, dt, {rows, cols});
  t.dup = Buffer(dev, dt, {rows, cols});
  return t;
}

std::vector<double> grads(Ctx& c, const Tensors& t) {
  if (t.gate_up.t().defined()) return to_host_f64(c, t.dgate_up.t());
  auto g = to_host_f64(c, t.dgate.t()), u = to_host_f64(c, t.dup.t());
  g.insert(g.end(), u.begin(), u.end());
  return g;
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "swiglu sizes: rows I");
  const int64_t rows = s[0], cols = s[1], n = rows * cols;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  auto gate_up = random_values(size_t(2 * n), 3, -4.0, 4.0), dh = random_values(size_t(n), 4);
  Ctx cpu = Ctx::make_cpu();
  for (DType dt : bench_dtypes(r.ctx()))
    for (SwigluLayout layout : {SwigluLayout::fused, SwigluLayout::separate}) {
      const std::string label = dtype_label(dt) + (layout == SwigluLayout::fused ? " fused " : " separate ") + shape;
      // Reference: the CPU op in f64 on the dtype-rounded values.
      Tensors ref = make(cpu, DType::f64, layout, rows, cols, round_values(dt, gate_up), round_values(dt, dh));
      swiglu_forward(cpu, ref.fwd());
      swiglu_backward(cpu, ref.bwd());
      Tensors t = make(r.ctx(), dt, layout, rows, cols, gate_up, dh);

      swiglu_forward(r.ctx(), t.fwd());
      Row row{"swiglu_forward", label};
      row.rel_err = rel_error(to_host_f64(r.ctx(), t.h.t()), to_host_f64(cpu, ref.h.t()));
      verify(r, row, dt);
      row.us = r.time_us([&] { swiglu_forward(r.ctx(), t.fwd()); });
      row.bytes = 3.0 * n * dtype_size(dt);  // read gate and up, write h
      r.add(row);

      swiglu_backward(r.ctx(), t.bwd());
      Row brow{"swiglu_backward", label};
      brow.rel_err = rel_error(grads(r.ctx(), t), grads(cpu, ref));
      verify(r, brow, dt);
      brow.us = r.time_us([&] { swiglu_backward(r.ctx(), t.bwd()); });
      brow.bytes = 5.0 * n * dtype_size(dt);  // read gate, up, dh; write dgate, dup
      r.add(brow);
    }
}

// Qwen2.5-1.5B MLP: intermediate size 8960, 8192 tokens.
ATTNLAB_BENCH("swiglu", "rows I", {{8192, 8960}}, run);

}  // namespace
}  // namespace attnlab::bench
