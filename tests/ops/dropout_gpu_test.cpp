#include "core/ops/dropout.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {

std::vector<double> nonzero_values(size_t n, uint64_t seed) {
  auto mag = rand_uniform(n, 0.5, 1.5, seed), sign = rand_uniform(n, -1, 1, seed + 1);
  for (size_t i = 0; i < n; ++i) mag[i] = sign[i] < 0 ? -mag[i] : mag[i];
  return mag;
}

}  // namespace

class DropoutGpu : public ::testing::TestWithParam<DType> {};

// The GPU must drop exactly the elements the CPU drops (same Philox stream, same threshold),
// for offsets that do and do not start on a Philox block of four, in place or not.
TEST_P(DropoutGpu, SameMaskAsCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  Ctx cpu = Ctx::make_cpu(g.seed);
  for (int64_t n : {1, 7, 4099, (1 << 20) + 3})
    for (uint64_t offset : {0ull, 1ull, 2ull, 3ull, 12345ull, (1ull << 33) + 6})
      for (double p : {0.1, 0.5}) {
        const std::string where = std::string(dtype_name(dt)) + " n=" + std::to_string(n) +
                                  " offset=" + std::to_string(offset) + " p=" + std::to_string(p);
        auto x = round_as(dt, nonzero_values(n, n + offset));
        Buffer cx = make_tensor(Device::cpu, DType::f64, {n}, x), cy = make_poisoned(Device::cpu, DType::f64, {n});
        dropout_forward(cpu, {cy.t(), cx.t(), p, offset});
        auto ref = to_host_f64(cpu, cy.t());
        Buffer gx = make_tensor(Device::cuda, dt, {n}, x), gy = make_poisoned(Device::cuda, dt, {n});
        dropout_forward(g, {gy.t(), gx.t(), p, offset});
        auto got = to_host_f64(g, gy.t());
        int64_t mismatched = 0, dropped = 0;
        for (int64_t i = 0; i < n; ++i) {
          mismatched += (got[i] == 0.0) != (ref[i] == 0.0);
          dropped += ref[i] == 0.0;
        }
        EXPECT_EQ(mismatched, 0) << where;
        if (n > 1000) EXPECT_GT(dropped, 0) << where;
        EXPECT_LT(rel_err(got, ref), gpu_tol(dt)) << where;
        // Backward, in place on the gradient: the same mask again.
        auto dy = round_as(dt, nonzero_values(n, n + offset + 7));
        Buffer gd = make_tensor(Device::cuda, dt, {n}, dy);
        dropout_backward(g, {gd.t(), gd.t(), p, offset});
        auto dx = to_host_f64(g, gd.t());
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(dx[i] == 0.0, ref[i] == 0.0) << where << " i=" << i;
      }
}

TEST_P(DropoutGpu, ZeroProbabilityIsTheIdentity) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t n = 65537;
  auto x = round_as(dt, nonzero_values(n, 9));
  Buffer gx = make_tensor(Device::cuda, dt, {n}, x), gy = make_poisoned(Device::cuda, dt, {n});
  dropout_forward(gpu_ctx(), {gy.t(), gx.t(), 0.0, 4});
  EXPECT_EQ(to_host_f64(gpu_ctx(), gy.t()), x);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DropoutGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
