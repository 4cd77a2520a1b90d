#include "tests/ops/gate_mlp_test_util.h"

namespace attnlab::test {

class GateMlpGpu : public ::testing::TestWithParam<DType> {};

// Forward (y, a1, ‖adj‖) and backward (dx, da3, every parameter gradient) against the CPU in
// double on the dtype-rounded inputs. Shapes: a single row (decode), odd and prime row counts
// and widths, one past a row-chunk (33) and column-tile (32) boundary.
TEST_P(GateMlpGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const double tol = gpu_tol(dt);
  // (1100, 7): more rows than the ‖adj‖ kernel has blocks (grid-stride).
  std::vector<std::pair<int64_t, int64_t>> shapes{{1100, 7}};
  for (int64_t rows : {1, 33, 173})
    for (int64_t dim : {7, 257, 1031}) shapes.emplace_back(rows, dim);
  for (auto [rows, dim] : shapes) {
    const std::string what = std::to_string(rows) + "x" + std::to_string(dim);
    GateCase c = rounded(make_gate_case(rows, dim, uint64_t(rows * 131 + dim)), dt);
    GateForward got = run_gate_forward(Device::cuda, dt, c), ref = run_gate_forward(Device::cpu, DType::f64, c);
    for (int g = 0; g < kNumGates; ++g) EXPECT_LT(rel_err(got.y[g], ref.y[g]), tol) << what << " y" << g;
    EXPECT_LT(rel_err(got.a1, ref.a1), 1e-5) << what << " a1 (fp32 out, exact operands)";
    EXPECT_LT(rel_err(got.norm, ref.norm), tol) << what << " adj_norm";

    GateBackward gb = run_gate_backward(Device::cuda, dt, c), rb = run_gate_backward(Device::cpu, DType::f64, c);
    EXPECT_LT(rel_err(gb.dx, rb.dx), tol) << what << " dx";
    for (int g = 0; g < kNumGates; ++g) {
      EXPECT_LT(rel_err(gb.da3[g], rb.da3[g]), tol) << what << " da3 " << g;
      for (int k = 0; k < 4; ++k)
        EXPECT_LT(rel_err(gb.grad[g][k], rb.grad[g][k]), tol) << what << " gate " << g << " " << gate_param_name(k);
    }
  }
}

// In place (da3 over dy), dx accumulation and a frozen gate, as on the CPU.
TEST_P(GateMlpGpu, InPlaceAccumulateAndFrozen) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  GateCase c = rounded(make_gate_case(41, 263, 77), dt);
  GateBackwardOptions o{.in_place = true, .accumulate_dx = true, .dx0 = round_as(dt, rand_uniform(c.x.size(), -3, 3, 5)),
                        .frozen = {true, false, false}};
  GateBackward got = run_gate_backward(Device::cuda, dt, c, o);
  GateBackward ref = run_gate_backward(Device::cpu, DType::f64, c, o);
  EXPECT_LT(rel_err(got.dx, ref.dx), gpu_tol(dt));
  EXPECT_TRUE(got.grad[0][0].empty());
  for (int g : {1, 2})
    for (int k = 0; k < 4; ++k) EXPECT_LT(rel_err(got.grad[g][k], ref.grad[g][k]), gpu_tol(dt)) << g << gate_param_name(k);
}

// Zero fc2 (the init): the gated inputs equal x bit for bit on the GPU too.
TEST_P(GateMlpGpu, ZeroFc2IsIdentityBitForBit) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  GateCase c = rounded(make_gate_case(37, 263, 9, /*zero_fc2=*/true), dt);
  GateForward f = run_gate_forward(Device::cuda, dt, c);
  for (int g = 0; g < kNumGates; ++g) EXPECT_EQ(f.y[g], c.x) << "gate " << g;
  for (double n : f.norm) EXPECT_EQ(n, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GateMlpGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
