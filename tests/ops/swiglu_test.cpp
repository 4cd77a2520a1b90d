#include "core/ops/swiglu.h"

#include <cmath>

#include "support/testing.h"

namespace attnlab::test {
namespace {

// gate and up as [rows, I] each, packed into the fused [rows, 2I] row layout.
std::vector<double> fuse(const std::vector<double>& gate, const std::vector<double>& up, int64_t rows, int64_t cols) {
  std::vector<double> f(size_t(2 * rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      f[size_t(r * 2 * cols + c)] = gate[size_t(r * cols + c)];
      f[size_t(r * 2 * cols + cols + c)] = up[size_t(r * cols + c)];
    }
  return f;
}

struct Case {
  int64_t rows, cols;
  std::vector<double> gate, up, dh;
};
Case make_case(int64_t rows, int64_t cols, uint64_t seed) {
  size_t n = size_t(rows * cols);
  return {rows, cols, rand_uniform(n, -6, 6, seed), rand_uniform(n, -2, 2, seed + 1),
          rand_uniform(n, -1, 1, seed + 2)};
}

std::vector<double> forward_separate(const Case& c, DType dt) {
  Buffer g = make_tensor(Device::cpu, dt, {c.rows, c.cols}, c.gate), u = make_tensor(Device::cpu, dt, {c.rows, c.cols}, c.up);
  Buffer h = make_poisoned(Device::cpu, dt, {c.rows, c.cols});
  swiglu_forward(cpu_ctx(), {.h = h.t(), .gate = g.t(), .up = u.t()});
  return to_host_f64(cpu_ctx(), h.t());
}
// Returns [dgate, dup] concatenated.
std::vector<double> backward_separate(const Case& c, DType dt) {
  Buffer g = make_tensor(Device::cpu, dt, {c.rows, c.cols}, c.gate), u = make_tensor(Device::cpu, dt, {c.rows, c.cols}, c.up);
  Buffer dh = make_tensor(Device::cpu, dt, {c.rows, c.cols}, c.dh);
  Buffer dg = make_poisoned(Device::cpu, dt, {c.rows, c.cols}), du = make_poisoned(Device::cpu, dt, {c.rows, c.cols});
  swiglu_backward(cpu_ctx(), {.dgate = dg.t(), .dup = du.t(), .dh = dh.t(), .gate = g.t(), .up = u.t()});
  auto out = to_host_f64(cpu_ctx(), dg.t()), upart = to_host_f64(cpu_ctx(), du.t());
  out.insert(out.end(), upart.begin(), upart.end());
  return out;
}

}  // namespace

TEST(Swiglu, ForwardAndBackwardMatchFormula) {
  Case c = make_case(7, 31, 21);
  auto h = forward_separate(c, DType::f64);
  auto grads = backward_separate(c, DType::f64);
  const size_t n = c.gate.size();
  for (size_t i = 0; i < n; ++i) {
    // Written independently: silu(a) = a / (1 + e^−a); silu'(a) = (1 + e^−a + a·e^−a)/(1 + e^−a)².
    const double a = c.gate[i], u = c.up[i], e = std::exp(-a);
    const double silu = a / (1 + e), dsilu = (1 + e + a * e) / ((1 + e) * (1 + e));
    ASSERT_NEAR(h[i], silu * u, 1e-14) << i;
    ASSERT_NEAR(grads[i], c.dh[i] * u * dsilu, 1e-14) << i;
    ASSERT_NEAR(grads[n + i], c.dh[i] * silu, 1e-14) << i;
  }
}

TEST(Swiglu, FusedLayoutMatchesSeparate) {
  Case c = make_case(5, 37, 31);
  auto fused = fuse(c.gate, c.up, c.rows, c.cols);
  Buffer gu = make_tensor(Device::cpu, DType::f64, {c.rows, 2 * c.cols}, fused);
  Buffer h = make_poisoned(Device::cpu, DType::f64, {c.rows, c.cols});
  swiglu_forward(cpu_ctx(), {.h = h.t(), .gate_up = gu.t(), .layout = SwigluLayout::fused});
  EXPECT_EQ(to_host_f64(cpu_ctx(), h.t()), forward_separate(c, DType::f64));

  auto sep = backward_separate(c, DType::f64);
  const size_t n = c.gate.size();
  std::vector<double> dg_ref(sep.begin(), sep.begin() + long(n)), du_ref(sep.begin() + long(n), sep.end());
  auto want = fuse(dg_ref, du_ref, c.rows, c.cols);
  Buffer dh = make_tensor(Device::cpu, DType::f64, {c.rows, c.cols}, c.dh);
  Buffer dgu = make_poisoned(Device::cpu, DType::f64, {c.rows, 2 * c.cols});
  swiglu_backward(cpu_ctx(), {.dgate_up = dgu.t(), .dh = dh.t(), .gate_up = gu.t(), .layout = SwigluLayout::fused});
  EXPECT_EQ(to_host_f64(cpu_ctx(), dgu.t()), want);

  // In place: the gradient overwrites the fused activations it is computed from.
  swiglu_backward(cpu_ctx(), {.dgate_up = gu.t(), .dh = dh.t(), .gate_up = gu.t(), .layout = SwigluLayout::fused});
  EXPECT_EQ(to_host_f64(cpu_ctx(), gu.t()), want);
}

// Very negative gates overflow e^−a; the result must stay finite with the right limits.
TEST(Swiglu, SaturatedGatesStayFinite) {
  const int64_t n = 6;
  std::vector<double> gate{-1000, -120, -90, 90, 120, 1000}, up{1.5, -2, 0.75, 3, -1.25, 2}, dh{0.5, 1, -2, 1.5, -0.5, 2};
  for (DType dt : {DType::f32, DType::f64}) {
    Case c{1, n, gate, up, dh};
    auto h = forward_separate(c, dt);
    auto g = backward_separate(c, dt);
    for (int64_t i = 0; i < n; ++i) {
      const bool pos = gate[size_t(i)] > 0;
      EXPECT_NEAR(h[size_t(i)], pos ? gate[size_t(i)] * up[size_t(i)] : 0.0, 1e-6 * std::fabs(gate[size_t(i)] * up[size_t(i)]))
          << dtype_name(dt) << " a=" << gate[size_t(i)];
      EXPECT_NEAR(g[size_t(i)], pos ? dh[size_t(i)] * up[size_t(i)] : 0.0, 1e-6) << dtype_name(dt);
      EXPECT_NEAR(g[size_t(n + i)], pos ? dh[size_t(i)] * gate[size_t(i)] : 0.0, 1e-6 * std::fabs(gate[size_t(i)]))
          << dtype_name(dt);
    }
  }
}

TEST(Swiglu, FloatMatchesDouble) {
  Case c = make_case(9, 67, 41);
  for (auto* v : {&c.gate, &c.up, &c.dh}) *v = round_as(DType::f32, *v);
  EXPECT_LT(rel_err(forward_separate(c, DType::f32), forward_separate(c, DType::f64)), 1e-6);
  EXPECT_LT(rel_err(backward_separate(c, DType::f32), backward_separate(c, DType::f64)), 1e-6);
}

TEST(Swiglu, FiniteDifference) {
  double worst = 0;
  for (SwigluLayout layout : {SwigluLayout::separate, SwigluLayout::fused}) {
    const int64_t rows = 3, cols = 13;
    Case c = make_case(rows, cols, 51);
    auto fused = fuse(c.gate, c.up, rows, cols);
    Buffer g(Device::cpu, DType::f64, {rows, cols}), u(Device::cpu, DType::f64, {rows, cols});
    Buffer gu(Device::cpu, DType::f64, {rows, 2 * cols}), h(Device::cpu, DType::f64, {rows, cols});
    const bool is_fused = layout == SwigluLayout::fused;
    auto loss = [&] {
      if (is_fused) {
        from_host_f64(cpu_ctx(), gu.t(), fused);
        swiglu_forward(cpu_ctx(), {.h = h.t(), .gate_up = gu.t(), .layout = layout});
      } else {
        from_host_f64(cpu_ctx(), g.t(), c.gate);
        from_host_f64(cpu_ctx(), u.t(), c.up);
        swiglu_forward(cpu_ctx(), {.h = h.t(), .gate = g.t(), .up = u.t()});
      }
      auto hv = to_host_f64(cpu_ctx(), h.t());
      double l = 0;
      for (size_t i = 0; i < hv.size(); ++i) l += c.dh[i] * hv[i];
      return l;
    };
    loss();  // fills the inputs
    Buffer dh = make_tensor(Device::cpu, DType::f64, {rows, cols}, c.dh);
    double err;
    if (is_fused) {
      Buffer dgu = make_poisoned(Device::cpu, DType::f64, {rows, 2 * cols});
      swiglu_backward(cpu_ctx(), {.dgate_up = dgu.t(), .dh = dh.t(), .gate_up = gu.t(), .layout = layout});
      auto grad = to_host_f64(cpu_ctx(), dgu.t());
      err = fd_check(loss, {{"gate_up", fused.data(), fused.size(), &grad}});
    } else {
      Buffer dg = make_poisoned(Device::cpu, DType::f64, {rows, cols}), du = make_poisoned(Device::cpu, DType::f64, {rows, cols});
      swiglu_backward(cpu_ctx(), {.dgate = dg.t(), .dup = du.t(), .dh = dh.t(), .gate = g.t(), .up = u.t()});
      auto ga = to_host_f64(cpu_ctx(), dg.t()), gb = to_host_f64(cpu_ctx(), du.t());
      err = fd_check(loss, {{"gate", c.gate.data(), c.gate.size(), &ga}, {"up", c.up.data(), c.up.size(), &gb}});
    }
    EXPECT_LT(err, 1e-8) << (is_fused ? "fused" : "separate");
    worst = std::max(worst, err);
  }
  record_fd_error("swiglu", worst);
}

TEST(Swiglu, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  Buffer h(Device::cpu, DType::f32, {4, 6}), g(Device::cpu, DType::f32, {4, 6}), u(Device::cpu, DType::f32, {4, 6});
  Buffer gu(Device::cpu, DType::f32, {4, 12}), gu_bad(Device::cpu, DType::f32, {4, 11});
  Buffer u64(Device::cpu, DType::f64, {4, 6}), u_bad(Device::cpu, DType::f32, {4, 5});
  EXPECT_THROW(swiglu_forward(c, {.h = h.t(), .gate = g.t(), .up = u_bad.t()}), Error);
  EXPECT_THROW(swiglu_forward(c, {.h = h.t(), .gate = g.t(), .up = u64.t()}), Error);
  EXPECT_THROW(swiglu_forward(c, {.h = h.t(), .gate = g.t(), .up = u.t(), .gate_up = gu.t()}), Error);
  EXPECT_THROW(swiglu_forward(c, {.h = h.t(), .gate_up = gu_bad.t(), .layout = SwigluLayout::fused}), Error);
  EXPECT_THROW(swiglu_forward(c, {.h = h.t(), .gate = g.t(), .layout = SwigluLayout::fused}), Error);
  EXPECT_THROW(swiglu_forward(c, {.h = gu.t().view({4, 12}), .gate_up = gu.t(), .layout = SwigluLayout::fused}), Error);
  // h viewed as [4, 6] over gate_up's storage: in place across layouts is refused.
  Tensor h_over(gu.t().data, DType::f32, Device::cpu, {4, 6});
  EXPECT_THROW(swiglu_forward(c, {.h = h_over, .gate_up = gu.t(), .layout = SwigluLayout::fused}), Error);
  EXPECT_THROW(swiglu_backward(c, {.dgate = g.t(), .dh = h.t(), .gate = g.t(), .up = u.t()}), Error);
}

}  // namespace attnlab::test
