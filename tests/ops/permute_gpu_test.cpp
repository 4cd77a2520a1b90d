#include "core/ops/permute.h"
#include "support/testing.h"

namespace attnlab::test {

class PermuteGpu : public ::testing::TestWithParam<DType> {};

// A copy: the GPU must reproduce the CPU result bit for bit. d = 6 is not a multiple of the
// 16-byte pack (scalar path); the others are.
TEST_P(PermuteGpu, MatchesCpuExactly) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (int64_t T : {7, 129})
    for (int64_t H : {5, 12})
      for (int64_t d : {6, 32, 64, 128}) {
        const int64_t B = 3;
        auto x = round_as(dt, rand_uniform(size_t(B * T * H * d), -2, 2, uint64_t(T * H * d)));
        Buffer in = make_tensor(Device::cuda, dt, {B, T, H, d}, x), out = make_poisoned(Device::cuda, dt, {B, H, T, d});
        permute_forward(gpu_ctx(), {out.t(), in.t()});
        Buffer cin = make_tensor(Device::cpu, DType::f64, {B, T, H, d}, x), cout = make_poisoned(Device::cpu, DType::f64, {B, H, T, d});
        permute_forward(cpu_ctx(), {cout.t(), cin.t()});
        EXPECT_EQ(to_host_f64(gpu_ctx(), out.t()), to_host_f64(cpu_ctx(), cout.t())) << T << " " << H << " " << d;
        Buffer back = make_poisoned(Device::cuda, dt, {B, T, H, d});
        permute_backward(gpu_ctx(), {back.t(), out.t()});
        EXPECT_EQ(to_host_f64(gpu_ctx(), back.t()), x) << T << " " << H << " " << d;
      }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PermuteGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
