#include <cmath>

#include "optim/grad_norm.h"
#include "optim/slot_buffers.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

struct Grads {
  std::vector<SlotBuffers> bufs;
  std::vector<ParamSlot> slots;
  double sumsq = 0;  // Σ g² in double over the values the tensors hold
};
Grads make_grads(Device dev, DType dt, const std::vector<int64_t>& sizes, uint64_t seed) {
  Grads g;
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto v = round_as(dt, rand_normal(size_t(sizes[k]), 0.01 * double(k + 1), seed + k));
    for (double x : v) g.sumsq += x * x;
    g.bufs.emplace_back(dev, dt, v, int64_t(k % 3 == 2));
  }
  for (auto& b : g.bufs) g.slots.push_back(b.slot);
  return g;
}

struct NormOut {
  double norm, scale;
  int32_t nonfinite;
};
NormOut run(Ctx& c, const ParamTable& table, DType dt, double max_norm) {
  const Device dev = c.device;
  Buffer norm = make_poisoned(dev, dt, {1}), scale = make_poisoned(dev, dt, {1});
  Buffer flag = make_poisoned(dev, DType::i32, {1});
  grad_norm(c, table, {norm.t(), scale.t(), flag.t(), max_norm});
  return {to_host_f64(c, norm.t())[0], to_host_f64(c, scale.t())[0], int32_t(to_host_f64(c, flag.t())[0])};
}

class GradNormCpu : public ::testing::TestWithParam<DType> {};

TEST_P(GradNormCpu, MatchesDoubleSumOfSquaresAndClips) {
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  Grads g = make_grads(Device::cpu, dt, {1, 2, 4093, 4099, 9001, 0, 31}, 3);
  ParamTable table(c, g.slots);
  const double expect = std::sqrt(g.sumsq);
  const double tol = dt == DType::f64 ? 1e-14 : 1e-7;
  // Clipping active: max_norm below the norm.
  NormOut o = run(c, table, dt, expect / 3);
  EXPECT_NEAR(o.norm, expect, tol * expect);
  EXPECT_NEAR(o.scale, (expect / 3) / (expect + 1e-6), tol);
  EXPECT_EQ(o.nonfinite, 0);
  // Inactive: max_norm above the norm gives exactly 1; max_norm <= 0 means no clipping.
  EXPECT_EQ(run(c, table, dt, 10 * expect).scale, 1.0);
  EXPECT_EQ(run(c, table, dt, 0.0).scale, 1.0);
  // The optional unrounded Σ g² (ZeRO-1 sums it across ranks), and its checks.
  Buffer norm = make_poisoned(Device::cpu, dt, {1}), sumsq = make_poisoned(Device::cpu, DType::f64, {1});
  GradNormArgs a{norm.t(), {}, {}, 0.0};
  a.sumsq = sumsq.t();
  grad_norm(c, table, a);
  EXPECT_NEAR(sumsq.t().ptr<double>()[0], g.sumsq, 1e-12 * g.sumsq);  // another summation order
  if (dt == DType::f64) EXPECT_EQ(std::sqrt(sumsq.t().ptr<double>()[0]), norm.t().ptr<double>()[0]);
  Buffer wrong = make_poisoned(Device::cpu, DType::f32, {1});
  a.sumsq = wrong.t();
  EXPECT_THROW(grad_norm(c, table, a), Error);
}

TEST_P(GradNormCpu, FlagsNaNAndInf) {
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  for (double bad : {double(NAN), double(INFINITY), -double(INFINITY)}) {
    Grads g = make_grads(Device::cpu, dt, {101, 4099}, 9);
    auto v = to_host_f64(c, g.slots[1].grad);
    v[4000] = bad;
    from_host_f64(c, g.slots[1].grad, v);
    ParamTable table(c, g.slots);
    NormOut o = run(c, table, dt, 1.0);
    EXPECT_EQ(o.nonfinite, 1) << bad;
    EXPECT_FALSE(std::isfinite(o.norm)) << bad;
    if (std::isnan(bad)) EXPECT_TRUE(std::isnan(o.scale));
    else EXPECT_EQ(o.scale, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GradNormCpu, ::testing::Values(DType::f64, DType::f32),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(GradNorm, ClipScaleFormula) {
  EXPECT_DOUBLE_EQ(grad_clip_scale(4.0, 1.0), 1.0 / (4.0 + 1e-6));
  EXPECT_EQ(grad_clip_scale(0.5, 1.0), 1.0);
  EXPECT_EQ(grad_clip_scale(4.0, 0.0), 1.0);
  EXPECT_EQ(grad_clip_scale(INFINITY, 1.0), 0.0);
  EXPECT_TRUE(std::isnan(grad_clip_scale(NAN, 1.0)));
}

TEST(GradNorm, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  Grads g = make_grads(Device::cpu, DType::f32, {5}, 1);
  ParamTable table(c, g.slots);
  Buffer norm64(Device::cpu, DType::f64, {1}), norm2(Device::cpu, DType::f32, {2}), flag32(Device::cpu, DType::f32, {1});
  Buffer norm(Device::cpu, DType::f32, {1});
  EXPECT_THROW(grad_norm(c, table, {norm64.t(), {}, {}, 1.0}), Error);
  EXPECT_THROW(grad_norm(c, table, {norm2.t(), {}, {}, 1.0}), Error);
  EXPECT_THROW(grad_norm(c, table, {norm.t(), {}, flag32.t(), 1.0}), Error);
  Grads mixed = make_grads(Device::cpu, DType::f64, {5}, 2);
  EXPECT_THROW(ParamTable(c, {g.slots[0], mixed.slots[0]}), Error);
}

}  // namespace
}  // namespace attnlab::test
