#include "core/ops/residual.h"
#include "support/testing.h"

namespace attnlab::test {

class ResidualGpu : public ::testing::TestWithParam<DType> {};

TEST_P(ResidualGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (int64_t n : {1, 7, 4099, 65537}) {
    auto a = round_as(dt, rand_uniform(n, -2, 2, n)), b = round_as(dt, rand_uniform(n, -2, 2, n + 1));
    Buffer ta = make_tensor(Device::cuda, dt, {n}, a), tb = make_tensor(Device::cuda, dt, {n}, b);
    Buffer to = make_poisoned(Device::cuda, dt, {n});
    residual_forward(gpu_ctx(), {to.t(), ta.t(), tb.t()});
    std::vector<double> ref(n);
    for (int64_t i = 0; i < n; ++i) ref[i] = a[i] + b[i];
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), to.t()), ref), gpu_tol(dt)) << "n=" << n;

    auto g = round_as(dt, rand_uniform(n, -1, 1, n + 2));
    Buffer tg = make_tensor(Device::cuda, dt, {n}, g);
    residual_backward(gpu_ctx(), {tg.t(), ta.t(), Tensor{}});
    for (int64_t i = 0; i < n; ++i) ref[i] = a[i] + g[i];
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), ta.t()), ref), gpu_tol(dt)) << "n=" << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ResidualGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
