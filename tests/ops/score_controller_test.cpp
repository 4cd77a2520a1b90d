// The score-controller op (core/ops/score_controller.h): values and the [B, T, H] → [B, H, T]
// transpose against the formulas written out here, finite differences in double for both kinds,
// and float against double.
#include "core/ops/score_controller.h"

#include <cmath>

#include "support/testing.h"

namespace attnlab::test {
namespace {

std::vector<double> forward(ControllerKind k, DType dt, int64_t B, int64_t T, int64_t H, const std::vector<double>& z) {
  Buffer tz = make_tensor(Device::cpu, dt, {B, T, H}, z), out = make_poisoned(Device::cpu, dt, {B, H, T});
  score_controller_forward(cpu_ctx(), {k, tz.t(), out.t()});
  return to_host_f64(cpu_ctx(), out.t());
}

std::vector<double> backward(ControllerKind k, DType dt, int64_t B, int64_t T, int64_t H, const std::vector<double>& z,
                             const std::vector<double>& dout) {
  Buffer tz = make_tensor(Device::cpu, dt, {B, T, H}, z), td = make_tensor(Device::cpu, dt, {B, H, T}, dout);
  Buffer dz = make_poisoned(Device::cpu, dt, {B, T, H});
  score_controller_backward(cpu_ctx(), {k, tz.t(), td.t(), dz.t()});
  return to_host_f64(cpu_ctx(), dz.t());
}

TEST(ScoreController, ValuesAndLayoutFollowTheFormulas) {
  const int64_t B = 3, T = 7, H = 5;
  const auto z = rand_uniform(size_t(B * T * H), -3, 3, 1);
  for (ControllerKind k : {ControllerKind::additive, ControllerKind::multiplicative}) {
    const auto out = forward(k, DType::f64, B, T, H, z);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
          const double a = std::tanh(z[size_t((b * T + t) * H + h)]);
          const double want = k == ControllerKind::additive ? a : std::exp(a);
          ASSERT_NEAR(out[size_t((b * H + h) * T + t)], want, 1e-15) << controller_kind_name(k);
        }
  }
}

TEST(ScoreController, BackwardMatchesFiniteDifferences) {
  const int64_t B = 2, T = 5, H = 3, n = B * T * H;
  auto z = rand_uniform(size_t(n), -2, 2, 2);
  const auto w = rand_uniform(size_t(n), -1, 1, 3);  // loss = Σ w ⊙ out
  for (ControllerKind k : {ControllerKind::additive, ControllerKind::multiplicative}) {
    const auto dz = backward(k, DType::f64, B, T, H, z, w);
    for (size_t i = 0; i < size_t(n); ++i) {
      auto loss = [&](double zi) {
        auto zz = z;
        zz[i] = zi;
        const auto out = forward(k, DType::f64, B, T, H, zz);
        double s = 0;
        for (size_t j = 0; j < out.size(); ++j) s += w[j] * out[j];
        return s;
      };
      const double h = 1e-6, fd = (loss(z[i] + h) - loss(z[i] - h)) / (2 * h);
      ASSERT_NEAR(dz[i], fd, 1e-8 * std::max(1.0, std::fabs(fd))) << controller_kind_name(k) << " element " << i;
    }
  }
}

TEST(ScoreController, FloatAgreesWithDouble) {
  const int64_t B = 2, T = 13, H = 7;
  const auto z = round_as(DType::f32, rand_uniform(size_t(B * T * H), -4, 4, 4));
  const auto d = round_as(DType::f32, rand_uniform(size_t(B * T * H), -1, 1, 5));
  for (ControllerKind k : {ControllerKind::additive, ControllerKind::multiplicative}) {
    EXPECT_LT(rel_err(forward(k, DType::f32, B, T, H, z), forward(k, DType::f64, B, T, H, z)), 1e-6);
    EXPECT_LT(rel_err(backward(k, DType::f32, B, T, H, z, d), backward(k, DType::f64, B, T, H, z, d)), 1e-6);
  }
}

}  // namespace
}  // namespace attnlab::test
