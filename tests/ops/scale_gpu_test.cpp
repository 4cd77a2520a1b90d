#include <cmath>

#include "core/ops/scale.h"
#include "support/testing.h"

namespace attnlab::test {

class ScaleGpu : public ::testing::TestWithParam<DType> {};

// Forward (β = 0 over a poisoned y, and β ≠ 0) and backward (overwrite and accumulate) against
// the CPU op in f64 on the same rounded inputs, on odd and prime sizes.
TEST_P(ScaleGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const double alpha = 1.0 - (0.8 - 0.6 * std::exp(-0.3)), beta = std::sqrt(37.0);
  for (int64_t n : {1, 7, 4099, 65537}) {
    auto x = round_as(dt, rand_uniform(size_t(n), -2, 2, uint64_t(n)));
    auto y0 = round_as(dt, rand_uniform(size_t(n), -2, 2, uint64_t(n) + 1));
    for (double b : {0.0, beta}) {
      Buffer gx = make_tensor(Device::cuda, dt, {n}, x);
      Buffer gy = b == 0 ? make_poisoned(Device::cuda, dt, {n}) : make_tensor(Device::cuda, dt, {n}, y0);
      scale_forward(gpu_ctx(), {gy.t(), gx.t(), alpha, b});
      Buffer cx = make_tensor(Device::cpu, DType::f64, {n}, x), cy = make_tensor(Device::cpu, DType::f64, {n}, y0);
      scale_forward(cpu_ctx(), {cy.t(), cx.t(), alpha, b});
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gy.t()), to_host_f64(cpu_ctx(), cy.t())), gpu_tol(dt))
          << "forward n=" << n << " beta=" << b;
    }
    for (bool acc : {false, true}) {
      Buffer gdy = make_tensor(Device::cuda, dt, {n}, x);
      Buffer gdx = acc ? make_tensor(Device::cuda, dt, {n}, y0) : make_poisoned(Device::cuda, dt, {n});
      scale_backward(gpu_ctx(), {gdx.t(), gdy.t(), alpha, acc});
      Buffer cdy = make_tensor(Device::cpu, DType::f64, {n}, x), cdx = make_tensor(Device::cpu, DType::f64, {n}, y0);
      scale_backward(cpu_ctx(), {cdx.t(), cdy.t(), alpha, acc});
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gdx.t()), to_host_f64(cpu_ctx(), cdx.t())), gpu_tol(dt))
          << "backward n=" << n << " accumulate=" << acc;
    }
  }
}

// In place on the GPU: y = α·y.
TEST_P(ScaleGpu, InPlace) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t n = 4099;
  auto v = round_as(dt, rand_uniform(size_t(n), -2, 2, 5));
  Buffer g = make_tensor(Device::cuda, dt, {n}, v);
  scale_forward(gpu_ctx(), {g.t(), g.t(), 0.2, 0.0});
  std::vector<double> ref(v.size());
  for (size_t i = 0; i < v.size(); ++i) ref[i] = 0.2 * v[i];
  EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), g.t()), ref), gpu_tol(dt));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ScaleGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
