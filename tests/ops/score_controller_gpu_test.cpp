// The score-controller op on the GPU (f32, bf16) against the CPU f64 op on the same rounded inputs,
// odd and prime shapes, poisoned outputs.
#include "core/ops/score_controller.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

class ScoreControllerGpu : public ::testing::TestWithParam<DType> {};

TEST_P(ScoreControllerGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam(), acc = acc_dtype(dt);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 17, 5}, {2, 173, 14}, {5, 409, 7}};
  for (const auto& s : shapes) {
    const int64_t B = s[0], T = s[1], H = s[2], n = B * T * H;
    const auto z = round_as(dt, rand_uniform(size_t(n), -3, 3, uint64_t(n)));
    const auto d = round_as(DType::f32, rand_uniform(size_t(n), -1, 1, uint64_t(n) + 1));
    for (ControllerKind k : {ControllerKind::additive, ControllerKind::multiplicative}) {
      Buffer cz = make_tensor(Device::cpu, DType::f64, {B, T, H}, z), cout = make_poisoned(Device::cpu, DType::f64, {B, H, T});
      Buffer cd = make_tensor(Device::cpu, DType::f64, {B, H, T}, d), cdz = make_poisoned(Device::cpu, DType::f64, {B, T, H});
      score_controller_forward(cpu_ctx(), {k, cz.t(), cout.t()});
      score_controller_backward(cpu_ctx(), {k, cz.t(), cd.t(), cdz.t()});
      Buffer gz = make_tensor(Device::cuda, dt, {B, T, H}, z), gout = make_poisoned(Device::cuda, acc, {B, H, T});
      Buffer gd = make_tensor(Device::cuda, acc, {B, H, T}, d), gdz = make_poisoned(Device::cuda, dt, {B, T, H});
      score_controller_forward(gpu_ctx(), {k, gz.t(), gout.t()});
      score_controller_backward(gpu_ctx(), {k, gz.t(), gd.t(), gdz.t()});
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gout.t()), to_host_f64(cpu_ctx(), cout.t())), 1e-5)
          << controller_kind_name(k) << " " << B << "x" << T << "x" << H;
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gdz.t()), to_host_f64(cpu_ctx(), cdz.t())), gpu_tol(dt))
          << controller_kind_name(k) << " " << B << "x" << T << "x" << H;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ScoreControllerGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace
}  // namespace attnlab::test
