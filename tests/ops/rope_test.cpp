#include "core/ops/rope.h"

#include <cmath>
#include <complex>

#include "support/testing.h"

namespace attnlab::test {
namespace {

struct Shape {
  int64_t B, T, H, d;
  int64_t numel() const { return B * T * H * d; }
};

// [B, T, H, d] → [B, H, T, d], written independently of the permute op.
std::vector<double> heads_first(const std::vector<double>& v, Shape s) {
  std::vector<double> o(v.size());
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t c = 0; c < s.d; ++c)
          o[size_t(((b * s.H + h) * s.T + t) * s.d + c)] = v[size_t(((b * s.T + t) * s.H + h) * s.d + c)];
  return o;
}

// Runs forward (or backward when `grad`) on the CPU; `in` is x (forward) or dout (backward).
std::vector<double> run(DType dt, Shape s, const std::vector<double>& in, RopeSpec spec, bool grad = false,
                        const std::vector<int32_t>* positions = nullptr) {
  Buffer pos;
  if (positions) {
    pos = make_ids(Device::cpu, {s.B, s.T}, *positions);
    spec.positions = pos.t();
  }
  Buffer tokens_major = make_poisoned(Device::cpu, dt, {s.B, s.T, s.H, s.d});
  Buffer rotated = spec.heads_first ? make_poisoned(Device::cpu, dt, {s.B, s.H, s.T, s.d})
                                    : make_poisoned(Device::cpu, dt, {s.B, s.T, s.H, s.d});
  if (grad) {
    from_host_f64(cpu_ctx(), rotated.t(), in);
    rope_backward(cpu_ctx(), {tokens_major.t(), rotated.t(), spec});
    return to_host_f64(cpu_ctx(), tokens_major.t());
  }
  from_host_f64(cpu_ctx(), tokens_major.t(), in);
  rope_forward(cpu_ctx(), {rotated.t(), tokens_major.t(), spec});
  return to_host_f64(cpu_ctx(), rotated.t());
}

// Independent reference: each pair as a complex number x1 + i·x2 times e^{i·pos·θ^(−2k/rot)}.
std::vector<double> complex_reference(Shape s, const std::vector<double>& x, RopeLayout layout, int64_t rot,
                                      double theta, const std::vector<int64_t>& pos_of_token) {
  std::vector<double> y = x;
  const int64_t half = rot / 2;
  for (int64_t bt = 0; bt < s.B * s.T; ++bt)
    for (int64_t h = 0; h < s.H; ++h) {
      const size_t row = size_t((bt * s.H + h) * s.d);
      for (int64_t k = 0; k < half; ++k) {
        const size_t i1 = row + size_t(layout == RopeLayout::interleaved ? 2 * k : k);
        const size_t i2 = row + size_t(layout == RopeLayout::interleaved ? 2 * k + 1 : k + half);
        const double angle = double(pos_of_token[size_t(bt)]) * std::pow(theta, -2.0 * double(k) / double(rot));
        const std::complex<double> z = std::complex<double>(x[i1], x[i2]) * std::polar(1.0, angle);
        y[i1] = z.real();
        y[i2] = z.imag();
      }
    }
  return y;
}

RopeSpec spec_of(RopeLayout layout, double theta = 1e4, int64_t rot = 0, int64_t offset = 0, bool hf = false) {
  RopeSpec s;
  s.layout = layout;
  s.theta = theta;
  s.rotary_dim = rot;
  s.pos_offset = offset;
  s.heads_first = hf;
  return s;
}

const RopeLayout kLayouts[] = {RopeLayout::rotate_half, RopeLayout::interleaved};

}  // namespace

TEST(Rope, MatchesComplexRotation) {
  const Shape s{2, 5, 3, 32};
  auto x = rand_uniform(size_t(s.numel()), -2, 2, 61);
  auto explicit_pos = rand_ints(size_t(s.B * s.T), 0, 40000, 62);
  for (RopeLayout layout : kLayouts)
    for (double theta : {1e4, 1e6})
      for (int64_t rot : {int64_t(32), int64_t(16)}) {
        std::vector<int64_t> pos(size_t(s.B * s.T));
        for (int64_t bt = 0; bt < s.B * s.T; ++bt) pos[size_t(bt)] = 17 + bt % s.T;
        auto y = run(DType::f64, s, x, spec_of(layout, theta, rot, 17));
        EXPECT_LT(max_abs_diff(y, complex_reference(s, x, layout, rot, theta, pos)), 1e-12)
            << rope_layout_name(layout) << " theta=" << theta << " rot=" << rot;
        for (size_t i = 0; i < pos.size(); ++i) pos[i] = explicit_pos[i];
        y = run(DType::f64, s, x, spec_of(layout, theta, rot, 17), false, &explicit_pos);
        // Angles up to 4e4 rad: double rounding of the angle allows ~1e-11 here.
        EXPECT_LT(max_abs_diff(y, complex_reference(s, x, layout, rot, theta, pos)), 1e-10)
            << rope_layout_name(layout) << " explicit positions, theta=" << theta << " rot=" << rot;
      }
}

TEST(Rope, PositionZeroIsIdentity) {
  const Shape s{2, 1, 3, 64};
  auto x = rand_uniform(size_t(s.numel()), -3, 3, 63);
  for (DType dt : {DType::f32, DType::f64}) {
    auto xr = round_as(dt, x);
    EXPECT_EQ(run(dt, s, xr, spec_of(RopeLayout::rotate_half)), xr) << dtype_name(dt);
    EXPECT_EQ(run(dt, s, xr, spec_of(RopeLayout::rotate_half), true), xr) << dtype_name(dt);
    const Shape s4{1, 4, 2, 32};
    auto x4 = round_as(dt, rand_uniform(size_t(s4.numel()), -3, 3, 64));
    std::vector<int32_t> zeros(4, 0);
    EXPECT_EQ(run(dt, s4, x4, spec_of(RopeLayout::rotate_half, 1e6, 0, 9), false, &zeros), x4) << dtype_name(dt);
  }
}

TEST(Rope, PreservesPairNormsAndPassesTailThrough) {
  const Shape s{2, 9, 2, 64};
  const int64_t rot = 48;
  auto x = rand_uniform(size_t(s.numel()), -2, 2, 65);
  for (RopeLayout layout : kLayouts) {
    auto y = run(DType::f64, s, x, spec_of(layout, 1e4, rot, 1000));
    for (int64_t row = 0; row < s.B * s.T * s.H; ++row) {
      const size_t base = size_t(row * s.d);
      for (int64_t k = 0; k < rot / 2; ++k) {
        const size_t i1 = base + size_t(layout == RopeLayout::interleaved ? 2 * k : k);
        const size_t i2 = base + size_t(layout == RopeLayout::interleaved ? 2 * k + 1 : k + rot / 2);
        const double nx = x[i1] * x[i1] + x[i2] * x[i2], ny = y[i1] * y[i1] + y[i2] * y[i2];
        ASSERT_NEAR(ny, nx, 1e-13 * nx) << "row " << row << " pair " << k;
      }
      for (int64_t c = rot; c < s.d; ++c) ASSERT_EQ(y[base + size_t(c)], x[base + size_t(c)]);
    }
  }
}

// Interleaved dims (2k, 2k+1) hold what rotate-half keeps at (k, k + rot/2): permuting the input
// that way and rotating interleaved equals rotating rotate-half and permuting the output.
TEST(Rope, InterleavedIsPermutedRotateHalf) {
  const Shape s{1, 6, 3, 64};
  const int64_t rot = 64, half = rot / 2;
  auto x = rand_uniform(size_t(s.numel()), -2, 2, 66);
  auto permute_dims = [&](const std::vector<double>& v) {
    std::vector<double> o(v.size());
    for (int64_t row = 0; row < s.B * s.T * s.H; ++row)
      for (int64_t k = 0; k < half; ++k) {
        o[size_t(row * s.d + 2 * k)] = v[size_t(row * s.d + k)];
        o[size_t(row * s.d + 2 * k + 1)] = v[size_t(row * s.d + k + half)];
      }
    return o;
  };
  auto half_out = run(DType::f64, s, x, spec_of(RopeLayout::rotate_half, 1e6, 0, 5));
  auto inter_out = run(DType::f64, s, permute_dims(x), spec_of(RopeLayout::interleaved, 1e6, 0, 5));
  EXPECT_EQ(inter_out, permute_dims(half_out));
}

// Token t with offset p is the token at position p + t of a longer sequence without offset, and
// explicit positions p + t give the same result as the offset.
TEST(Rope, OffsetEqualsShiftedPosition) {
  const int64_t p = 17;
  const Shape s{2, 7, 3, 32}, full{2, 7 + p, 3, 32};
  auto x_full = rand_uniform(size_t(full.numel()), -2, 2, 67);
  std::vector<double> x_tail;  // tokens p .. p+6 of each batch
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = p; t < full.T; ++t)
      for (int64_t i = 0; i < s.H * s.d; ++i) x_tail.push_back(x_full[size_t((b * full.T + t) * s.H * s.d + i)]);
  std::vector<int32_t> shifted;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t) shifted.push_back(int32_t(p + t));
  for (RopeLayout layout : kLayouts) {
    auto y_full = run(DType::f64, full, x_full, spec_of(layout));
    std::vector<double> y_tail;
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = p; t < full.T; ++t)
        for (int64_t i = 0; i < s.H * s.d; ++i) y_tail.push_back(y_full[size_t((b * full.T + t) * s.H * s.d + i)]);
    EXPECT_EQ(run(DType::f64, s, x_tail, spec_of(layout, 1e4, 0, p)), y_tail) << rope_layout_name(layout);
    EXPECT_EQ(run(DType::f64, s, x_tail, spec_of(layout, 1e4, 0, 0), false, &shifted), y_tail);
  }
}

TEST(Rope, HeadsFirstOutputIsThePermutedOutput) {
  const Shape s{2, 5, 3, 32};
  auto x = rand_uniform(size_t(s.numel()), -2, 2, 68);
  auto g = rand_uniform(size_t(s.numel()), -1, 1, 69);  // a gradient in [B, T, H, d]
  for (RopeLayout layout : kLayouts) {
    auto same = run(DType::f64, s, x, spec_of(layout, 1e4, 24, 3));
    EXPECT_EQ(run(DType::f64, s, x, spec_of(layout, 1e4, 24, 3, true)), heads_first(same, s));
    auto dx_same = run(DType::f64, s, g, spec_of(layout, 1e4, 24, 3), true);
    EXPECT_EQ(run(DType::f64, s, heads_first(g, s), spec_of(layout, 1e4, 24, 3, true), true), dx_same);
  }
}

// Backward is the transpose: <R x, g> = <x, Rᵀ g>, and since R is orthogonal Rᵀ(R x) = x.
TEST(Rope, BackwardIsTransposeAndInverse) {
  const Shape s{2, 6, 2, 32};
  auto x = rand_uniform(size_t(s.numel()), -2, 2, 70), g = rand_uniform(size_t(s.numel()), -1, 1, 71);
  for (RopeLayout layout : kLayouts)
    for (bool hf : {false, true}) {
      RopeSpec sp = spec_of(layout, 1e4, 16, 250, hf);
      auto rx = run(DType::f64, s, x, sp);
      auto g_rot = hf ? heads_first(g, s) : g;  // g in forward's output layout
      auto rtg = run(DType::f64, s, g_rot, sp, true);
      double lhs = 0, rhs = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        lhs += rx[i] * g_rot[i];
        rhs += x[i] * rtg[i];
      }
      EXPECT_NEAR(lhs, rhs, 1e-12 * std::fabs(lhs)) << rope_layout_name(layout) << " hf=" << hf;
      EXPECT_LT(max_abs_diff(run(DType::f64, s, rx, sp, true), x), 1e-14);
    }
}

TEST(Rope, InPlaceMatchesOutOfPlace) {
  const Shape s{2, 5, 3, 64};
  auto x = rand_uniform(size_t(s.numel()), -2, 2, 72);
  for (RopeLayout layout : kLayouts)
    for (bool grad : {false, true}) {
      RopeSpec sp = spec_of(layout, 1e6, 40, 11);
      Buffer t = make_tensor(Device::cpu, DType::f64, {s.B, s.T, s.H, s.d}, x);
      if (grad) rope_backward(cpu_ctx(), {t.t(), t.t(), sp});
      else rope_forward(cpu_ctx(), {t.t(), t.t(), sp});
      EXPECT_EQ(to_host_f64(cpu_ctx(), t.t()), run(DType::f64, s, x, sp, grad)) << rope_layout_name(layout);
    }
}

TEST(Rope, FloatMatchesDouble) {
  const Shape s{2, 9, 3, 64};
  auto x = round_as(DType::f32, rand_uniform(size_t(s.numel()), -2, 2, 73));
  for (RopeLayout layout : kLayouts) {
    RopeSpec sp = spec_of(layout, 1e6, 0, 40);
    EXPECT_LT(rel_err(run(DType::f32, s, x, sp), run(DType::f64, s, x, sp)), 1e-6);
    EXPECT_LT(rel_err(run(DType::f32, s, x, sp, true), run(DType::f64, s, x, sp, true)), 1e-6);
  }
}

TEST(Rope, FiniteDifference) {
  const Shape s{2, 3, 2, 32};
  double worst = 0;
  auto explicit_pos = rand_ints(size_t(s.B * s.T), 0, 3000, 74);
  for (RopeLayout layout : kLayouts)
    for (bool hf : {false, true})
      for (int64_t rot : {int64_t(0), int64_t(24)}) {
        RopeSpec sp = spec_of(layout, 1e4, rot, 7, hf);
        const bool use_pos = rot == 24 && hf;
        auto x = rand_uniform(size_t(s.numel()), -2, 2, 75);
        auto w = rand_uniform(size_t(s.numel()), -1, 1, 76);  // weights in the output layout
        auto loss = [&] {
          auto y = run(DType::f64, s, x, sp, false, use_pos ? &explicit_pos : nullptr);
          double l = 0;
          for (size_t i = 0; i < y.size(); ++i) l += w[i] * y[i];
          return l;
        };
        auto gx = run(DType::f64, s, w, sp, true, use_pos ? &explicit_pos : nullptr);
        double err = fd_check(loss, {{"x", x.data(), x.size(), &gx}});
        EXPECT_LT(err, 1e-8) << rope_layout_name(layout) << " hf=" << hf << " rot=" << rot;
        worst = std::max(worst, err);
      }
  record_fd_error("rope", worst);
}

TEST(Rope, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  auto fwd = [&](std::initializer_list<int64_t> xs, std::initializer_list<int64_t> os, RopeSpec sp) {
    Buffer x(Device::cpu, DType::f32, xs), o(Device::cpu, DType::f32, os);
    rope_forward(c, {o.t(), x.t(), sp});
  };
  RopeSpec ok = spec_of(RopeLayout::rotate_half);
  EXPECT_NO_THROW(fwd({1, 2, 3, 32}, {1, 2, 3, 32}, ok));
  EXPECT_THROW(fwd({1, 2, 3, 33}, {1, 2, 3, 33}, ok), Error);                        // odd d
  EXPECT_THROW(fwd({1, 2, 3, 32}, {1, 2, 3, 32}, spec_of(RopeLayout::rotate_half, 1e4, 34)), Error);  // rot > d
  EXPECT_THROW(fwd({1, 2, 3, 32}, {1, 2, 3, 32}, spec_of(RopeLayout::rotate_half, 1e4, 15)), Error);  // odd rot
  EXPECT_THROW(fwd({1, 2, 3, 32}, {1, 2, 3, 32}, spec_of(RopeLayout::rotate_half, 1e4, -2)), Error);
  EXPECT_THROW(fwd({1, 2, 3, 32}, {1, 2, 3, 32}, spec_of(RopeLayout::rotate_half, -1.0)), Error);  // theta
  EXPECT_THROW(fwd({1, 2, 3, 512}, {1, 2, 3, 512}, ok), Error);                      // d > 256
  EXPECT_THROW(fwd({1, 2, 3, 32}, {1, 3, 2, 32}, ok), Error);                        // wrong out layout
  EXPECT_THROW(fwd({1, 2, 3, 32}, {1, 2, 3, 32}, spec_of(RopeLayout::rotate_half, 1e4, 0, 0, true)), Error);
  EXPECT_NO_THROW(fwd({1, 2, 3, 32}, {1, 3, 2, 32}, spec_of(RopeLayout::rotate_half, 1e4, 0, 0, true)));
  EXPECT_THROW(fwd({2, 32}, {2, 32}, ok), Error);                                    // not 4-D
  // Heads-first cannot run in place.
  Buffer sq(Device::cpu, DType::f32, {1, 2, 2, 32});
  EXPECT_THROW(rope_forward(c, {sq.t(), sq.t(), spec_of(RopeLayout::rotate_half, 1e4, 0, 0, true)}), Error);
  // Positions: i32 [B, T] only.
  Buffer x(Device::cpu, DType::f32, {2, 3, 1, 32}), o(Device::cpu, DType::f32, {2, 3, 1, 32});
  Buffer pos_f(Device::cpu, DType::f32, {2, 3}), pos_bad(Device::cpu, DType::i32, {3, 2});
  RopeSpec sp = ok;
  sp.positions = pos_f.t();
  EXPECT_THROW(rope_forward(c, {o.t(), x.t(), sp}), Error);
  sp.positions = pos_bad.t();
  EXPECT_THROW(rope_forward(c, {o.t(), x.t(), sp}), Error);
  Buffer o64(Device::cpu, DType::f64, {2, 3, 1, 32});
  EXPECT_THROW(rope_forward(c, {o64.t(), x.t(), ok}), Error);                       // dtype mismatch
}

}  // namespace attnlab::test
