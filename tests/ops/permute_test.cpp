#include "core/ops/permute.h"

#include "support/testing.h"

namespace attnlab::test {

TEST(Permute, SwapsDimsOneAndTwo) {
  const int64_t B = 2, T = 5, H = 3, d = 7;
  auto x = rand_uniform(size_t(B * T * H * d), -2, 2, 81);
  Buffer in = make_tensor(Device::cpu, DType::f64, {B, T, H, d}, x);
  Buffer out = make_poisoned(Device::cpu, DType::f64, {B, H, T, d});
  permute_forward(cpu_ctx(), {out.t(), in.t()});
  auto y = to_host_f64(cpu_ctx(), out.t());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < d; ++c)
          ASSERT_EQ(y[size_t(((b * H + h) * T + t) * d + c)], x[size_t(((b * T + t) * H + h) * d + c)]);

  // Backward of [B,T,H,d] → [B,H,T,d] is the inverse swap: it restores the input.
  Buffer back = make_poisoned(Device::cpu, DType::f64, {B, T, H, d});
  permute_backward(cpu_ctx(), {back.t(), out.t()});
  EXPECT_EQ(to_host_f64(cpu_ctx(), back.t()), x);
}

TEST(Permute, FiniteDifference) {
  const int64_t B = 2, n1 = 3, n2 = 4, d = 5;
  const size_t n = size_t(B * n1 * n2 * d);
  auto x = rand_uniform(n, -2, 2, 82), w = rand_uniform(n, -1, 1, 83);
  Buffer in(Device::cpu, DType::f64, {B, n1, n2, d}), out(Device::cpu, DType::f64, {B, n2, n1, d});
  auto loss = [&] {
    from_host_f64(cpu_ctx(), in.t(), x);
    permute_forward(cpu_ctx(), {out.t(), in.t()});
    auto y = to_host_f64(cpu_ctx(), out.t());
    double l = 0;
    for (size_t i = 0; i < n; ++i) l += w[i] * y[i];
    return l;
  };
  Buffer tw = make_tensor(Device::cpu, DType::f64, {B, n2, n1, d}, w);
  Buffer din = make_poisoned(Device::cpu, DType::f64, {B, n1, n2, d});
  permute_backward(cpu_ctx(), {din.t(), tw.t()});
  auto g = to_host_f64(cpu_ctx(), din.t());
  double err = fd_check(loss, {{"in", x.data(), n, &g}});
  record_fd_error("permute", err);
  EXPECT_LT(err, 1e-8);
}

TEST(Permute, RejectsBadInputs) {
  Buffer in(Device::cpu, DType::f32, {2, 3, 4, 8}), same(Device::cpu, DType::f32, {2, 3, 4, 8});
  Buffer ok(Device::cpu, DType::f32, {2, 4, 3, 8}), f64(Device::cpu, DType::f64, {2, 4, 3, 8});
  EXPECT_THROW(permute_forward(cpu_ctx(), {same.t(), in.t()}), Error);
  EXPECT_THROW(permute_forward(cpu_ctx(), {f64.t(), in.t()}), Error);
  EXPECT_THROW(permute_forward(cpu_ctx(), {ok.t().view({2, 4, 24}), in.t()}), Error);
  Buffer sq(Device::cpu, DType::f32, {2, 3, 3, 8});
  EXPECT_THROW(permute_forward(cpu_ctx(), {sq.t(), sq.t()}), Error);  // in place
}

}  // namespace attnlab::test
