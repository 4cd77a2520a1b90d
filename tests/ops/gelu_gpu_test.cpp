#include "core/ops/gelu.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// The CPU f64 op on the same (dtype-rounded) inputs is the reference.
std::vector<double> cpu_forward(GeluKind kind, const std::vector<double>& x) {
  const int64_t n = int64_t(x.size());
  Buffer tx = make_tensor(Device::cpu, DType::f64, {n}, x), ty = make_poisoned(Device::cpu, DType::f64, {n});
  gelu_forward(cpu_ctx(), {ty.t(), tx.t(), kind});
  return to_host_f64(cpu_ctx(), ty.t());
}
std::vector<double> cpu_backward(GeluKind kind, const std::vector<double>& x, const std::vector<double>& dy) {
  const int64_t n = int64_t(x.size());
  Buffer tx = make_tensor(Device::cpu, DType::f64, {n}, x), tdy = make_tensor(Device::cpu, DType::f64, {n}, dy);
  Buffer tdx = make_poisoned(Device::cpu, DType::f64, {n});
  gelu_backward(cpu_ctx(), {tdx.t(), tdy.t(), tx.t(), kind});
  return to_host_f64(cpu_ctx(), tdx.t());
}

// A view of `count` elements starting `skip` elements into b: skip = 1 breaks 16-byte alignment.
Tensor view_at(const Buffer& b, int64_t skip, int64_t count) {
  return Tensor(static_cast<char*>(b.t().data) + size_t(skip) * dtype_size(b.t().dtype), b.t().dtype,
                b.t().device, {count}, b.t().name);
}

}  // namespace

class GeluGpu : public ::testing::TestWithParam<DType> {};

TEST_P(GeluGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const std::pair<int64_t, int64_t> shapes[] = {{1, 31}, {7, 1031}, {173, 2816}, {16, 3072}};
  for (GeluKind kind : {GeluKind::erf_exact, GeluKind::tanh_approx})
    for (auto [rows, cols] : shapes) {
      const int64_t n = rows * cols;
      auto x = round_as(dt, rand_uniform(size_t(n), -6, 6, uint64_t(n)));
      auto dy = round_as(dt, rand_uniform(size_t(n), -1, 1, uint64_t(n) + 1));
      Buffer tx = make_tensor(Device::cuda, dt, {rows, cols}, x), tdy = make_tensor(Device::cuda, dt, {rows, cols}, dy);
      Buffer ty = make_poisoned(Device::cuda, dt, {rows, cols}), tdx = make_poisoned(Device::cuda, dt, {rows, cols});
      gelu_forward(gpu_ctx(), {ty.t(), tx.t(), kind});
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), ty.t()), cpu_forward(kind, x)), gpu_tol(dt))
          << gelu_kind_name(kind) << " " << rows << "x" << cols;
      gelu_backward(gpu_ctx(), {tdx.t(), tdy.t(), tx.t(), kind});
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), tdx.t()), cpu_backward(kind, x, dy)), gpu_tol(dt))
          << gelu_kind_name(kind) << " " << rows << "x" << cols;
    }
}

// Pointers one element past a 16-byte boundary take the scalar path; in place reuses a buffer.
TEST_P(GeluGpu, UnalignedAndInPlace) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t n = 4099;
  auto x = round_as(dt, rand_uniform(size_t(n), -5, 5, 91)), dy = round_as(dt, rand_uniform(size_t(n), -1, 1, 92));
  for (GeluKind kind : {GeluKind::erf_exact, GeluKind::tanh_approx}) {
    Buffer bx = make_poisoned(Device::cuda, dt, {n + 1}), by = make_poisoned(Device::cuda, dt, {n + 1});
    Buffer bdy = make_poisoned(Device::cuda, dt, {n + 1});
    Tensor tx = view_at(bx, 1, n), ty = view_at(by, 1, n), tdy = view_at(bdy, 1, n);
    from_host_f64(gpu_ctx(), tx, x);
    from_host_f64(gpu_ctx(), tdy, dy);
    gelu_forward(gpu_ctx(), {ty, tx, kind});
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), ty), cpu_forward(kind, x)), gpu_tol(dt)) << gelu_kind_name(kind);
    gelu_backward(gpu_ctx(), {tdy, tdy, tx, kind});  // in place, unaligned
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), tdy), cpu_backward(kind, x, dy)), gpu_tol(dt)) << gelu_kind_name(kind);

    Buffer t = make_tensor(Device::cuda, dt, {n}, x);  // in place, aligned
    gelu_forward(gpu_ctx(), {t.t(), t.t(), kind});
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), t.t()), cpu_forward(kind, x)), gpu_tol(dt)) << gelu_kind_name(kind);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GeluGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
