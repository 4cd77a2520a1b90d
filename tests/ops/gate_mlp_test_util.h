#pragma once
// Shared by gate_mlp_test.cpp and gate_mlp_gpu_test.cpp: random cases, and runners that call the
// op on a device and bring every output back as host doubles.
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "core/ops/gate_mlp.h"
#include "support/testing.h"

namespace attnlab::test {

struct GateCase {
  int64_t rows = 0, dim = 0;
  std::vector<double> x, u;
  // Per gate: fc1_w [16, D+1], fc1_b [16], fc2_w [D, 16], fc2_b [D]; dy [rows, D].
  std::array<std::array<std::vector<double>, 4>, kNumGates> p;
  std::array<std::vector<double>, kNumGates> dy;
  // Initial contents of the parameter gradients (backward must add to them).
  std::array<std::array<std::vector<double>, 4>, kNumGates> g0;
};

inline std::array<int64_t, 4> gate_param_sizes(int64_t dim) {
  return {kGateHidden * (dim + 1), kGateHidden, dim * kGateHidden, dim};
}

// fc1 weights of a size that puts a1 across GELU's curved region, fc2 weights that push tanh off
// its linear part, u like entropies (positive, a few nats).
inline GateCase make_gate_case(int64_t rows, int64_t dim, uint64_t seed, bool zero_fc2 = false) {
  GateCase c;
  c.rows = rows, c.dim = dim;
  c.x = rand_uniform(size_t(rows * dim), -2, 2, seed);
  c.u = rand_uniform(size_t(rows), 0.5, 6, seed + 1);
  const auto sz = gate_param_sizes(dim);
  const double w1_scale = 1.5 / std::sqrt(double(dim + 1));
  for (int g = 0; g < kNumGates; ++g) {
    const uint64_t s = seed + 10 * uint64_t(g + 1);
    c.p[g][0] = rand_uniform(size_t(sz[0]), -w1_scale, w1_scale, s);
    c.p[g][1] = rand_uniform(size_t(sz[1]), -0.5, 0.5, s + 1);
    c.p[g][2] = zero_fc2 ? std::vector<double>(size_t(sz[2]), 0.0) : rand_uniform(size_t(sz[2]), -1, 1, s + 2);
    c.p[g][3] = zero_fc2 ? std::vector<double>(size_t(sz[3]), 0.0) : rand_uniform(size_t(sz[3]), -0.5, 0.5, s + 3);
    c.dy[g] = rand_uniform(size_t(rows * dim), -1, 1, s + 4);
    for (int k = 0; k < 4; ++k) c.g0[g][k] = rand_uniform(size_t(sz[k]), -1, 1, s + 5 + uint64_t(k));
  }
  return c;
}

// The case's inputs rounded as dtype `dt` stores them (u as its accumulation dtype stores it).
inline GateCase rounded(const GateCase& c, DType dt) {
  GateCase r = c;
  r.x = round_as(dt, c.x);
  for (int g = 0; g < kNumGates; ++g) {
    for (auto& v : r.p[g]) v = round_as(dt, v);
    r.dy[g] = round_as(dt, c.dy[g]);
  }
  if (dt != DType::f64) r.u = round_as(DType::f32, c.u);  // u is stored in the acc dtype, f32
  return r;
}

struct GateBuffers {
  std::array<std::array<Buffer, 4>, kNumGates> p;
  GateParams params[kNumGates];
  GateBuffers(Device dev, DType dt, const GateCase& c) {
    const int64_t D = c.dim, H = kGateHidden;
    for (int g = 0; g < kNumGates; ++g) {
      p[g][0] = make_tensor(dev, dt, {H, D + 1}, c.p[g][0], "fc1_w");
      p[g][1] = make_tensor(dev, dt, {H}, c.p[g][1], "fc1_b");
      p[g][2] = make_tensor(dev, dt, {D, H}, c.p[g][2], "fc2_w");
      p[g][3] = make_tensor(dev, dt, {D}, c.p[g][3], "fc2_b");
      params[g] = {p[g][0].t(), p[g][1].t(), p[g][2].t(), p[g][3].t()};
    }
  }
};

struct GateForward {
  std::array<std::vector<double>, kNumGates> y;
  std::vector<double> a1, norm;
};

inline GateForward run_gate_forward(Device dev, DType dt, const GateCase& c, bool with_norm = true) {
  Ctx& ctx = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  const DType acc = acc_dtype(dt);
  const int64_t R = c.rows, D = c.dim;
  GateBuffers pb(dev, dt, c);
  Buffer x = make_tensor(dev, dt, {R, D}, c.x, "x"), u = make_tensor(dev, acc, {R}, c.u, "u");
  Buffer a1 = make_poisoned(dev, acc, {R, kNumGates, kGateHidden}, "a1");
  Buffer norm = with_norm ? make_poisoned(dev, acc, {R, kNumGates}, "adj_norm") : Buffer();
  std::array<Buffer, kNumGates> y;
  GateMlpArgs args{.x = x.t(), .u = u.t(), .a1 = a1.t(), .adj_norm = norm.t()};
  for (int g = 0; g < kNumGates; ++g) {
    y[g] = make_poisoned(dev, dt, {R, D}, "y");
    args.gate[g] = pb.params[g];
    args.y[g] = y[g].t();
  }
  gate_mlp_forward(ctx, args);
  GateForward out;
  for (int g = 0; g < kNumGates; ++g) out.y[g] = to_host_f64(ctx, y[g].t());
  out.a1 = to_host_f64(ctx, a1.t());
  if (with_norm) out.norm = to_host_f64(ctx, norm.t());
  return out;
}

struct GateBackward {
  std::vector<double> dx;
  std::array<std::vector<double>, kNumGates> da3;
  // Gradient added by this call (after − before), per gate and parameter; empty when frozen.
  std::array<std::array<std::vector<double>, 4>, kNumGates> grad;
};

struct GateBackwardOptions {
  bool in_place = false;        // da3 written over dy
  bool accumulate_dx = false;   // dx starts from `dx0` and is added to
  std::vector<double> dx0;
  std::array<bool, kNumGates> frozen{false, false, false};
};

// Runs forward (for a1) and backward on `dev`.
inline GateBackward run_gate_backward(Device dev, DType dt, const GateCase& c, const GateBackwardOptions& o = {}) {
  Ctx& ctx = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  const DType acc = acc_dtype(dt);
  const int64_t R = c.rows, D = c.dim, H = kGateHidden;
  GateBuffers pb(dev, dt, c);
  Buffer x = make_tensor(dev, dt, {R, D}, c.x, "x"), u = make_tensor(dev, acc, {R}, c.u, "u");
  Buffer a1 = make_poisoned(dev, acc, {R, kNumGates, H}, "a1");
  std::array<Buffer, kNumGates> y, dy, da3;
  std::array<std::array<Buffer, 4>, kNumGates> gb;
  GateMlpArgs fa{.x = x.t(), .u = u.t(), .a1 = a1.t()};
  for (int g = 0; g < kNumGates; ++g) {
    y[g] = make_poisoned(dev, dt, {R, D}, "y");
    fa.gate[g] = pb.params[g];
    fa.y[g] = y[g].t();
  }
  gate_mlp_forward(ctx, fa);

  Buffer dx = o.accumulate_dx ? make_tensor(dev, dt, {R, D}, o.dx0, "dx") : make_poisoned(dev, dt, {R, D}, "dx");
  Buffer scratch = make_poisoned(dev, acc, {R, kGateScratchCols}, "scratch");
  GateMlpBackwardArgs ba{.x = x.t(), .u = u.t(), .a1 = a1.t(), .dx = dx.t(), .scratch = scratch.t(),
                         .accumulate_dx = o.accumulate_dx};
  for (int g = 0; g < kNumGates; ++g) {
    ba.gate[g] = pb.params[g];
    dy[g] = make_tensor(dev, dt, {R, D}, c.dy[g], "dy");
    ba.dy[g] = dy[g].t();
    if (o.in_place) {
      ba.da3[g] = dy[g].t();
    } else {
      da3[g] = make_poisoned(dev, dt, {R, D}, "da3");
      ba.da3[g] = da3[g].t();
    }
    if (o.frozen[size_t(g)]) continue;
    gb[g][0] = make_tensor(dev, acc, {H, D + 1}, c.g0[g][0], "dfc1_w");
    gb[g][1] = make_tensor(dev, acc, {H}, c.g0[g][1], "dfc1_b");
    gb[g][2] = make_tensor(dev, acc, {D, H}, c.g0[g][2], "dfc2_w");
    gb[g][3] = make_tensor(dev, acc, {D}, c.g0[g][3], "dfc2_b");
    ba.grad[g] = {gb[g][0].t(), gb[g][1].t(), gb[g][2].t(), gb[g][3].t()};
  }
  gate_mlp_backward(ctx, ba);
  GateBackward out;
  out.dx = to_host_f64(ctx, dx.t());
  for (int g = 0; g < kNumGates; ++g) {
    out.da3[g] = to_host_f64(ctx, ba.da3[g]);
    if (o.frozen[size_t(g)]) continue;
    for (int k = 0; k < 4; ++k) {
      auto after = to_host_f64(ctx, gb[g][k].t());
      // The initial values as the accumulation dtype holds them.
      const auto before = round_as(acc, c.g0[g][k]);
      for (size_t i = 0; i < after.size(); ++i) after[i] -= before[i];
      out.grad[g][k] = std::move(after);
    }
  }
  return out;
}

inline const char* gate_param_name(int k) {
  static const char* const names[4] = {"fc1_w", "fc1_b", "fc2_w", "fc2_b"};
  return names[k];
}

}  // namespace attnlab::test
