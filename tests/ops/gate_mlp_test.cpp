#include <cmath>

#include "tests/ops/gate_mlp_test_util.h"

namespace attnlab::test {
namespace {

// METHODS §1.3 step 8-9 written out on the concatenated input g = [x, u], independently of the
// op's shared math: Φ via std::erf, the adjustment via std::tanh.
GateForward naive_forward(const GateCase& c) {
  const int64_t R = c.rows, D = c.dim, H = kGateHidden;
  GateForward out;
  out.a1.assign(size_t(R * kNumGates * H), 0);
  out.norm.assign(size_t(R * kNumGates), 0);
  for (int g = 0; g < kNumGates; ++g) {
    const auto &w1 = c.p[g][0], &b1 = c.p[g][1], &w2 = c.p[g][2], &b2 = c.p[g][3];
    out.y[g].assign(size_t(R * D), 0);
    for (int64_t r = 0; r < R; ++r) {
      std::vector<double> in(c.x.begin() + r * D, c.x.begin() + (r + 1) * D);
      in.push_back(c.u[size_t(r)]);
      std::vector<double> h(static_cast<size_t>(H));
      for (int64_t j = 0; j < H; ++j) {
        double s = b1[size_t(j)];
        for (int64_t k = 0; k <= D; ++k) s += w1[size_t(j * (D + 1) + k)] * in[size_t(k)];
        out.a1[size_t(r * kNumGates * H + g * H + j)] = s;
        h[size_t(j)] = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      }
      double sq = 0;
      for (int64_t d = 0; d < D; ++d) {
        double a3 = b2[size_t(d)];
        for (int64_t j = 0; j < H; ++j) a3 += w2[size_t(d * H + j)] * h[size_t(j)];
        const double adj = 0.2 * std::tanh(a3);
        sq += adj * adj;
        out.y[g][size_t(r * D + d)] = in[size_t(d)] * (1 + adj);
      }
      out.norm[size_t(r * kNumGates + g)] = std::sqrt(sq);
    }
  }
  return out;
}

// Σ_g Σ dy_g ⊙ y_g: the scalar whose gradient backward computes.
double gate_loss(const GateCase& c) {
  GateForward f = run_gate_forward(Device::cpu, DType::f64, c, false);
  double l = 0;
  for (int g = 0; g < kNumGates; ++g)
    for (size_t i = 0; i < f.y[g].size(); ++i) l += c.dy[g][i] * f.y[g][i];
  return l;
}

}  // namespace

TEST(GateMlp, ForwardMatchesNaive) {
  GateCase c = make_gate_case(7, 13, 3);
  GateForward got = run_gate_forward(Device::cpu, DType::f64, c);
  GateForward want = naive_forward(c);
  for (int g = 0; g < kNumGates; ++g) EXPECT_LT(max_abs_diff(got.y[g], want.y[g]), 1e-13) << "gate " << g;
  EXPECT_LT(max_abs_diff(got.a1, want.a1), 1e-13);
  EXPECT_LT(max_abs_diff(got.norm, want.norm), 1e-13);
  // The case exercises the gates: multipliers visibly away from 1, within (0.8, 1.2).
  double max_adj = 0;
  for (int g = 0; g < kNumGates; ++g)
    for (size_t i = 0; i < c.x.size(); ++i) {
      const double m = want.y[g][i] / c.x[i];
      ASSERT_GT(m, 0.8);
      ASSERT_LT(m, 1.2);
      max_adj = std::max(max_adj, std::fabs(m - 1));
    }
  EXPECT_GT(max_adj, 0.05);
}

// The original's init: fc2 is zero, so adj = 0 and every gated input equals x exactly.
TEST(GateMlp, ZeroFc2IsIdentityBitForBit) {
  for (DType dt : {DType::f32, DType::f64}) {
    GateCase c = rounded(make_gate_case(11, 17, 5, /*zero_fc2=*/true), dt);
    GateForward f = run_gate_forward(Device::cpu, dt, c);
    const auto x = round_as(dt, c.x);
    for (int g = 0; g < kNumGates; ++g) EXPECT_EQ(f.y[g], x) << dtype_name(dt) << " gate " << g;
    for (double n : f.norm) EXPECT_EQ(n, 0.0);
    // a1 is still computed (and not trivially zero): backward of fc2 needs it.
    double s = 0;
    for (double v : f.a1) s += std::fabs(v);
    EXPECT_GT(s, 1.0);
  }
}

// Backward at the zero init: fc1 gets no gradient (fc2 blocks it), fc2 does, dx = Σ dy.
TEST(GateMlp, ZeroFc2Backward) {
  GateCase c = make_gate_case(5, 11, 7, /*zero_fc2=*/true);
  GateBackward b = run_gate_backward(Device::cpu, DType::f64, c);
  for (size_t i = 0; i < b.dx.size(); ++i)
    ASSERT_NEAR(b.dx[i], c.dy[0][i] + c.dy[1][i] + c.dy[2][i], 1e-15) << i;
  for (int g = 0; g < kNumGates; ++g) {
    for (int k : {0, 1})
      for (double v : b.grad[g][k]) ASSERT_EQ(v, 0.0) << gate_param_name(k);
    double s = 0;
    for (double v : b.grad[g][2]) s += std::fabs(v);
    EXPECT_GT(s, 0.1) << "fc2_w of gate " << g << " must learn from the zero init";
  }
}

TEST(GateMlp, FiniteDifference) {
  GateCase c = make_gate_case(5, 7, 11);
  GateBackward b = run_gate_backward(Device::cpu, DType::f64, c);
  std::vector<GradInput> inputs{{"x", c.x.data(), c.x.size(), &b.dx}};
  std::vector<std::string> names;
  names.reserve(kNumGates * 4);
  for (int g = 0; g < kNumGates; ++g)
    for (int k = 0; k < 4; ++k) {
      names.push_back(std::string("qkv").substr(size_t(g), 1) + "." + gate_param_name(k));
      inputs.push_back({names.back(), c.p[g][k].data(), c.p[g][k].size(), &b.grad[g][k]});
    }
  std::string report;
  const double err = fd_check([&] { return gate_loss(c); }, inputs, 1e-6, 200, &report);
  EXPECT_LT(err, 1e-8) << report;
  record_fd_error("gate_mlp", err);
  // u gets no gradient by design (METHODS §1.4), yet the loss does depend on it: the gates read
  // it. This pins that dropping du is a choice, not an accident of a u-independent loss.
  const double h = 1e-6;
  const double keep = c.u[2];
  c.u[2] = keep + h;
  const double lp = gate_loss(c);
  c.u[2] = keep - h;
  const double lm = gate_loss(c);
  c.u[2] = keep;
  EXPECT_GT(std::fabs((lp - lm) / (2 * h)), 1e-4);
}

TEST(GateMlp, FloatMatchesDouble) {
  GateCase c = rounded(make_gate_case(9, 37, 13), DType::f32);
  GateForward f32 = run_gate_forward(Device::cpu, DType::f32, c), f64 = run_gate_forward(Device::cpu, DType::f64, c);
  for (int g = 0; g < kNumGates; ++g) EXPECT_LT(rel_err(f32.y[g], f64.y[g]), 1e-6);
  EXPECT_LT(rel_err(f32.a1, f64.a1), 1e-5);
  EXPECT_LT(rel_err(f32.norm, f64.norm), 1e-5);
  GateBackward b32 = run_gate_backward(Device::cpu, DType::f32, c), b64 = run_gate_backward(Device::cpu, DType::f64, c);
  EXPECT_LT(rel_err(b32.dx, b64.dx), 1e-5);
  for (int g = 0; g < kNumGates; ++g) {
    EXPECT_LT(rel_err(b32.da3[g], b64.da3[g]), 1e-5);
    for (int k = 0; k < 4; ++k) EXPECT_LT(rel_err(b32.grad[g][k], b64.grad[g][k]), 1e-4) << g << gate_param_name(k);
  }
}

// da3 over dy in place, dx accumulation and frozen gates all give the plain call's numbers.
TEST(GateMlp, InPlaceAccumulateAndFrozen) {
  GateCase c = make_gate_case(6, 19, 17);
  GateBackward ref = run_gate_backward(Device::cpu, DType::f64, c);

  GateBackward in_place = run_gate_backward(Device::cpu, DType::f64, c, {.in_place = true});
  EXPECT_EQ(in_place.dx, ref.dx);
  for (int g = 0; g < kNumGates; ++g) {
    EXPECT_EQ(in_place.da3[g], ref.da3[g]);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(in_place.grad[g][k], ref.grad[g][k]);
  }

  GateBackwardOptions acc{.accumulate_dx = true, .dx0 = rand_uniform(c.x.size(), -3, 3, 99)};
  GateBackward accd = run_gate_backward(Device::cpu, DType::f64, c, acc);
  for (size_t i = 0; i < ref.dx.size(); ++i) ASSERT_NEAR(accd.dx[i], acc.dx0[i] + ref.dx[i], 1e-14) << i;

  GateBackward frozen = run_gate_backward(Device::cpu, DType::f64, c, {.frozen = {false, true, false}});
  EXPECT_EQ(frozen.dx, ref.dx);
  EXPECT_TRUE(frozen.grad[1][0].empty());
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(frozen.grad[0][k], ref.grad[0][k]);
    EXPECT_EQ(frozen.grad[2][k], ref.grad[2][k]);
  }
}

// Leading dims ([B, T, D]) are rows like any other.
TEST(GateMlp, LeadingDimsAreRows) {
  GateCase c = make_gate_case(6, 5, 23);
  GateForward flat = run_gate_forward(Device::cpu, DType::f64, c);
  Ctx& ctx = cpu_ctx();
  GateBuffers pb(Device::cpu, DType::f64, c);
  Buffer x = make_tensor(Device::cpu, DType::f64, {2, 3, 5}, c.x), u = make_tensor(Device::cpu, DType::f64, {2, 3}, c.u);
  Buffer a1 = make_poisoned(Device::cpu, DType::f64, {2, 3, 48});
  std::array<Buffer, kNumGates> y;
  GateMlpArgs args{.x = x.t(), .u = u.t(), .a1 = a1.t()};
  for (int g = 0; g < kNumGates; ++g) {
    y[g] = make_poisoned(Device::cpu, DType::f64, {2, 3, 5});
    args.gate[g] = pb.params[g];
    args.y[g] = y[g].t();
  }
  gate_mlp_forward(ctx, args);
  for (int g = 0; g < kNumGates; ++g) EXPECT_EQ(to_host_f64(ctx, y[g].t()), flat.y[g]);
}

TEST(GateMlp, RejectsBadInputs) {
  Ctx& ctx = cpu_ctx();
  GateCase c = make_gate_case(4, 6, 29);
  GateBuffers pb(Device::cpu, DType::f32, c);
  Buffer x(Device::cpu, DType::f32, {4, 6}), u(Device::cpu, DType::f32, {4}), u64(Device::cpu, DType::f64, {4});
  Buffer a1(Device::cpu, DType::f32, {4, 3, 16}), a1_bad(Device::cpu, DType::f32, {4, 3, 15});
  Buffer y0(Device::cpu, DType::f32, {4, 6}), y1(Device::cpu, DType::f32, {4, 6}), y2(Device::cpu, DType::f32, {4, 6});
  Buffer y_bad(Device::cpu, DType::f32, {4, 7}), w_bad(Device::cpu, DType::f32, {16, 6});
  auto good = [&] {
    GateMlpArgs a{.x = x.t(), .u = u.t(), .a1 = a1.t()};
    for (int g = 0; g < kNumGates; ++g) a.gate[g] = pb.params[g];
    a.y[0] = y0.t(), a.y[1] = y1.t(), a.y[2] = y2.t();
    return a;
  };
  EXPECT_NO_THROW(gate_mlp_forward(ctx, good()));
  auto a = good();
  a.u = u64.t();
  EXPECT_THROW(gate_mlp_forward(ctx, a), Error);
  a = good();
  a.a1 = a1_bad.t();
  EXPECT_THROW(gate_mlp_forward(ctx, a), Error);
  a = good();
  a.y[1] = y_bad.t();
  EXPECT_THROW(gate_mlp_forward(ctx, a), Error);
  a = good();
  a.y[2] = x.t();  // would overwrite x while the other gates still read it
  EXPECT_THROW(gate_mlp_forward(ctx, a), Error);
  a = good();
  a.gate[0].fc1_w = w_bad.t();  // [16, D] instead of [16, D+1]: the u column is missing
  EXPECT_THROW(gate_mlp_forward(ctx, a), Error);
  a = good();
  a.gate[2].fc2_b = Tensor();
  EXPECT_THROW(gate_mlp_forward(ctx, a), Error);

  Buffer dx(Device::cpu, DType::f32, {4, 6}), scratch(Device::cpu, DType::f32, {4, kGateScratchCols});
  Buffer scratch_small(Device::cpu, DType::f32, {4, 48}), g64(Device::cpu, DType::f64, {16, 7});
  auto good_b = [&] {
    GateMlpBackwardArgs b{.x = x.t(), .u = u.t(), .a1 = a1.t(), .dx = dx.t(), .scratch = scratch.t()};
    for (int g = 0; g < kNumGates; ++g) b.gate[g] = pb.params[g];
    b.dy[0] = y0.t(), b.dy[1] = y1.t(), b.dy[2] = y2.t();
    b.da3[0] = y0.t(), b.da3[1] = y1.t(), b.da3[2] = y2.t();
    return b;
  };
  EXPECT_NO_THROW(gate_mlp_backward(ctx, good_b()));
  auto b = good_b();
  b.scratch = scratch_small.t();
  EXPECT_THROW(gate_mlp_backward(ctx, b), Error);
  b = good_b();
  b.grad[1].fc1_w = g64.t();  // gradients accumulate in f32 for f32 parameters
  EXPECT_THROW(gate_mlp_backward(ctx, b), Error);
  b = good_b();
  b.da3[0] = y1.t();  // another gate's dy
  EXPECT_THROW(gate_mlp_backward(ctx, b), Error);
  b = good_b();
  b.dx = x.t();
  EXPECT_THROW(gate_mlp_backward(ctx, b), Error);
}

}  // namespace attnlab::test
