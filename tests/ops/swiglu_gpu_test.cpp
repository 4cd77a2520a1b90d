#include "core/ops/swiglu.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

struct Result {
  std::vector<double> h, dgate, dup;  // dgate/dup in the layout of the inputs
};

// Runs forward and backward on `dev`. `gate_in`/`up_in` are [rows, I] each in the separate
// layout; in the fused layout gate_in holds the whole [rows, 2I] tensor and up_in is unused.
Result run(Device dev, DType dt, SwigluLayout layout, int64_t rows, int64_t cols, const std::vector<double>& gate_in,
           const std::vector<double>& up_in, const std::vector<double>& dh_in) {
  Ctx& c = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  Buffer h = make_poisoned(dev, dt, {rows, cols}), dh = make_tensor(dev, dt, {rows, cols}, dh_in);
  Result r;
  if (layout == SwigluLayout::fused) {
    Buffer gu = make_tensor(dev, dt, {rows, 2 * cols}, gate_in), dgu = make_poisoned(dev, dt, {rows, 2 * cols});
    swiglu_forward(c, {.h = h.t(), .gate_up = gu.t(), .layout = layout});
    swiglu_backward(c, {.dgate_up = dgu.t(), .dh = dh.t(), .gate_up = gu.t(), .layout = layout});
    r.dgate = to_host_f64(c, dgu.t());
  } else {
    Buffer g = make_tensor(dev, dt, {rows, cols}, gate_in), u = make_tensor(dev, dt, {rows, cols}, up_in);
    Buffer dg = make_poisoned(dev, dt, {rows, cols}), du = make_poisoned(dev, dt, {rows, cols});
    swiglu_forward(c, {.h = h.t(), .gate = g.t(), .up = u.t()});
    swiglu_backward(c, {.dgate = dg.t(), .dup = du.t(), .dh = dh.t(), .gate = g.t(), .up = u.t()});
    r.dgate = to_host_f64(c, dg.t());
    r.dup = to_host_f64(c, du.t());
  }
  r.h = to_host_f64(c, h.t());
  return r;
}

}  // namespace

class SwigluGpu : public ::testing::TestWithParam<DType> {};

TEST_P(SwigluGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (SwigluLayout layout : {SwigluLayout::separate, SwigluLayout::fused})
    for (int64_t rows : {1, 7, 173})
      for (int64_t cols : {31, 1031, 2816}) {
        const bool fused = layout == SwigluLayout::fused;
        const size_t n = size_t(rows * cols);
        const uint64_t seed = uint64_t(rows * 7919 + cols);
        auto gate = round_as(dt, rand_uniform(fused ? 2 * n : n, -6, 6, seed));
        auto up = round_as(dt, rand_uniform(n, -2, 2, seed + 1));
        auto dh = round_as(dt, rand_uniform(n, -1, 1, seed + 2));
        Result got = run(Device::cuda, dt, layout, rows, cols, gate, up, dh);
        Result ref = run(Device::cpu, DType::f64, layout, rows, cols, gate, up, dh);
        const std::string what = std::string(fused ? "fused " : "separate ") + std::to_string(rows) + "x" + std::to_string(cols);
        EXPECT_LT(rel_err(got.h, ref.h), gpu_tol(dt)) << what;
        EXPECT_LT(rel_err(got.dgate, ref.dgate), gpu_tol(dt)) << what;
        if (!fused) EXPECT_LT(rel_err(got.dup, ref.dup), gpu_tol(dt)) << what;
      }
}

// The gradient overwrites the fused activations it reads (what a training step does to save
// memory), on both the vector (I = 1024) and the scalar (I = 1031) paths.
TEST_P(SwigluGpu, FusedBackwardInPlace) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t rows = 13;
  for (int64_t cols : {1024, 1031}) {
    auto gu = round_as(dt, rand_uniform(size_t(2 * rows * cols), -6, 6, 93));
    auto dh = round_as(dt, rand_uniform(size_t(rows * cols), -1, 1, 94));
    Result ref = run(Device::cpu, DType::f64, SwigluLayout::fused, rows, cols, gu, {}, dh);
    Buffer t = make_tensor(Device::cuda, dt, {rows, 2 * cols}, gu), tdh = make_tensor(Device::cuda, dt, {rows, cols}, dh);
    swiglu_backward(gpu_ctx(), {.dgate_up = t.t(), .dh = tdh.t(), .gate_up = t.t(), .layout = SwigluLayout::fused});
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), t.t()), ref.dgate), gpu_tol(dt)) << "I=" << cols;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SwigluGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
