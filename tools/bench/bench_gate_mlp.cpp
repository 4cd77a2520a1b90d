#include <array>
#include <cmath>

#include "core/memory.h"
#include "core/ops/gate_mlp.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

constexpr int G = kNumGates;

// Host values of one problem (three gates), generated once and uploaded per dtype.
struct Values {
  int64_t rows, dim;
  std::vector<double> x, u;
  std::array<std::array<std::vector<double>, 4>, G> p;
  std::array<std::vector<double>, G> dy;
};

Values make_values(int64_t rows, int64_t dim) {
  Values v{rows, dim, random_values(size_t(rows * dim), 1, -2, 2), random_values(size_t(rows), 2, 0.5, 6), {}, {}};
  const double s1 = 1.5 / std::sqrt(double(dim + 1));
  for (int g = 0; g < G; ++g) {
    const uint64_t s = 10 * uint64_t(g + 1);
    v.p[g][0] = random_values(size_t(kGateHidden * (dim + 1)), s, -s1, s1);
    v.p[g][1] = random_values(size_t(kGateHidden), s + 1, -0.5, 0.5);
    v.p[g][2] = random_values(size_t(dim * kGateHidden), s + 2, -1, 1);
    v.p[g][3] = random_values(size_t(dim), s + 3, -0.5, 0.5);
    v.dy[g] = random_values(size_t(rows * dim), s + 4);
  }
  return v;
}

// Device tensors of one dtype, and the forward / backward argument structs over them.
struct Problem {
  Buffer x, u, a1, dx, scratch;
  std::array<std::array<Buffer, 4>, G> p, grad;
  std::array<Buffer, G> y, dy, da3;
  GateMlpArgs fwd;
  GateMlpBackwardArgs bwd;

  Problem(Ctx& c, DType dt, const Values& v) {
    const DType acc = acc_dtype(dt);
    const int64_t R = v.rows, D = v.dim, H = kGateHidden;
    const Device dev = c.device;
    x = upload(c, dt, {R, D}, v.x);
    u = upload(c, acc, {R}, v.u);
    a1 = Buffer(dev, acc, {R, G, H});
    dx = Buffer(dev, dt, {R, D});
    scratch = Buffer(dev, acc, {R, kGateScratchCols});
    fwd = {.x = x.t(), .u = u.t(), .a1 = a1.t()};
    bwd = {.x = x.t(), .u = u.t(), .a1 = a1.t(), .dx = dx.t(), .scratch = scratch.t()};
    for (int g = 0; g < G; ++g) {
      p[g][0] = upload(c, dt, {H, D + 1}, v.p[g][0]);
      p[g][1] = upload(c, dt, {H}, v.p[g][1]);
      p[g][2] = upload(c, dt, {D, H}, v.p[g][2]);
      p[g][3] = upload(c, dt, {D}, v.p[g][3]);
      grad[g][0] = Buffer(dev, acc, {H, D + 1});
      grad[g][1] = Buffer(dev, acc, {H});
      grad[g][2] = Buffer(dev, acc, {D, H});
      grad[g][3] = Buffer(dev, acc, {D});
      for (auto& b : grad[g]) zero_tensor(c, b.t());
      y[g] = Buffer(dev, dt, {R, D});
      dy[g] = upload(c, dt, {R, D}, v.dy[g]);
      da3[g] = Buffer(dev, dt, {R, D});  // separate from dy, so repeated timed calls see the same dy
      const GateParams gp{p[g][0].t(), p[g][1].t(), p[g][2].t(), p[g][3].t()};
      fwd.gate[g] = bwd.gate[g] = gp;
      fwd.y[g] = y[g].t();
      bwd.dy[g] = dy[g].t();
      bwd.da3[g] = da3[g].t();
      bwd.grad[g] = {grad[g][0].t(), grad[g][1].t(), grad[g][2].t(), grad[g][3].t()};
    }
  }
  std::vector<double> outputs(Ctx& c) const {
    std::vector<double> o;
    for (int g = 0; g < G; ++g) {
      auto v = to_host_f64(c, y[g].t());
      o.insert(o.end(), v.begin(), v.end());
    }
    return o;
  }
};

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "gate_mlp sizes: rows D");
  const int64_t rows = s[0], dim = s[1];
  const Values v = make_values(rows, dim);
  Ctx cpu = Ctx::make_cpu();
  Ctx& c = r.ctx();
  for (DType dt : bench_dtypes(c)) {
    // Reference: the CPU op in f64 on the dtype-rounded values (u keeps fp32).
    Values rv = v;
    rv.x = round_values(dt, v.x);
    for (int g = 0; g < G; ++g) {
      for (auto& p : rv.p[g]) p = round_values(dt, p);
      rv.dy[g] = round_values(dt, v.dy[g]);
    }
    rv.u = round_values(DType::f32, v.u);
    Problem ref(cpu, DType::f64, rv), t(c, dt, v);
    gate_mlp_forward(cpu, ref.fwd);
    gate_mlp_backward(cpu, ref.bwd);
    const std::string shape = dtype_label(dt) + " 3 gates " + std::to_string(rows) + "x" + std::to_string(dim);
    const double es = double(dtype_size(dt)), n = double(rows) * double(dim), H = double(kGateHidden);

    gate_mlp_forward(c, t.fwd);
    Row f{"gate_mlp_forward", shape};
    f.rel_err = rel_error(t.outputs(c), ref.outputs(cpu));
    verify(r, f, dt);
    f.us = r.time_us([&] { gate_mlp_forward(c, t.fwd); });
    f.flops = G * (2 * n * H + 2 * n * H);  // fc1 and fc2 per gate
    f.bytes = 4 * n * es;                   // read x, write the three gated inputs
    f.peak_tflops = kPeakFp32Tflops;        // the per-element fc2 runs on fp32 FMA units
    f.note = "memory-bound; fc1 is 3 GEMMs with N=16";
    r.add(f);

    gate_mlp_backward(c, t.bwd);
    Row b{"gate_mlp_backward", shape};
    b.rel_err = rel_error(to_host_f64(c, t.dx.t()), to_host_f64(cpu, ref.dx.t()));
    for (int g = 0; g < G; ++g)
      for (int k = 0; k < 4; ++k)
        b.rel_err = std::max(b.rel_err, rel_error(to_host_f64(c, t.grad[g][k].t()), to_host_f64(cpu, ref.grad[g][k].t())));
    verify(r, b, dt);
    b.us = r.time_us([&] { gate_mlp_backward(c, t.bwd); });
    b.flops = G * (2 * n * H /*recompute fc2*/ + 3 * 2 * n * H /*dA2, da2, dA1*/ + 2 * n * H /*dx via fc1*/);
    b.bytes = 8 * n * es;  // read x and the three dy; write the three da3 and dx
    b.peak_tflops = kPeakFp32Tflops;
    b.note = "rel_err: max over dx and the 12 parameter gradients";
    r.add(b);
  }
}

// Qwen2.5-1.5B: D = 1536, one 2048-token sequence.
ATTNLAB_BENCH("gate_mlp", "rows D (tokens, hidden size)", {{2048, 1536}}, run);

}  // namespace
}  // namespace attnlab::bench
