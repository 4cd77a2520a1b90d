#include "core/ops/rmsnorm.h"
#include "ops/norm_gpu_support.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {

struct RmsCase {
  int64_t rows = 1, C = 1;
  bool weight = true, want_dx = true, accumulate_dx = true, want_dw = true;
  int shift = 0;
  bool per_head = false;  // x viewed as [3, 5, rows / 15, C] (Qwen3 q_norm layout)
  uint64_t seed = 1;
};

Tensor shaped(const Tensor& t, const RmsCase& k) { return k.per_head ? t.view({3, 5, k.rows / 15, k.C}) : t; }

void check_rmsnorm(DType dt, const RmsCase& k) {
  const int64_t rows = k.rows, C = k.C, n = rows * C;
  const double eps = 1e-6;
  auto x = round_as(dt, rand_uniform(n, -2, 3, k.seed)), dy = round_as(dt, rand_uniform(n, -1, 1, k.seed + 1));
  auto w = round_as(dt, rand_uniform(C, 0.5, 1.5, k.seed + 2));
  auto dx0 = round_as(dt, rand_uniform(n, -1, 1, k.seed + 3)), dw0 = rand_uniform(C, -1, 1, k.seed + 4);
  const std::string where = std::string(dtype_name(dt)) + " rows=" + std::to_string(rows) + " C=" + std::to_string(C);

  std::vector<double> ref_y, ref_rstd, ref_dx, ref_dw;
  {
    Ctx& c = cpu_ctx();
    Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), tw = make_tensor(Device::cpu, DType::f64, {C}, w);
    Buffer tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);
    Buffer ty(Device::cpu, DType::f64, {rows, C}), tr(Device::cpu, DType::f64, {rows});
    Buffer tdx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0),
           tdw = make_tensor(Device::cpu, DType::f64, {C}, dw0);
    rmsnorm_forward(c, {ty.t(), tr.t(), tx.t(), k.weight ? tw.t() : Tensor{}, eps});
    RmsNormBackwardArgs a{k.want_dx ? tdx.t() : Tensor{},
                          k.want_dw ? tdw.t() : Tensor{},
                          tdy.t(),
                          tx.t(),
                          k.weight ? tw.t() : Tensor{},
                          tr.t()};
    a.accumulate_dx = k.accumulate_dx;
    rmsnorm_backward(c, a);
    ref_y = to_host_f64(c, ty.t());
    ref_rstd = to_host_f64(c, tr.t());
    ref_dx = to_host_f64(c, tdx.t());
    ref_dw = to_host_f64(c, tdw.t());
  }

  Ctx& g = gpu_ctx();
  auto tx = shifted_tensor(dt, rows, C, x, k.shift), tdy = shifted_tensor(dt, rows, C, dy, k.shift);
  auto tw = shifted_tensor(dt, 1, C, w, k.shift, false), ty = shifted_tensor(dt, rows, C, {}, k.shift);
  auto tdx = shifted_tensor(dt, rows, C, k.accumulate_dx ? dx0 : std::vector<double>{}, k.shift);
  Buffer tr = make_poisoned(Device::cuda, DType::f32, {rows}), tdw = make_tensor(Device::cuda, DType::f32, {C}, dw0);
  Buffer scratch = make_poisoned(Device::cuda, DType::f32, {int64_t(rmsnorm_backward_scratch_floats(g, dt, rows, C))});
  rmsnorm_forward(g, {shaped(ty.t, k), tr.t(), shaped(tx.t, k), k.weight ? tw.t : Tensor{}, eps});
  RmsNormBackwardArgs a{k.want_dx ? shaped(tdx.t, k) : Tensor{},
                        k.want_dw ? tdw.t() : Tensor{},
                        shaped(tdy.t, k),
                        shaped(tx.t, k),
                        k.weight ? tw.t : Tensor{},
                        tr.t(),
                        scratch.t()};
  a.accumulate_dx = k.accumulate_dx;
  rmsnorm_backward(g, a);

  const double tol = gpu_tol(dt), grad_tol = dt == DType::bf16 ? 1e-4 : 1e-5;
  EXPECT_LT(rel_err(to_host_f64(g, ty.t), ref_y), tol) << where;
  EXPECT_LT(rel_err(to_host_f64(g, tr.t()), ref_rstd), 1e-5) << where;
  if (k.want_dx) {
    std::vector<double> scale(n);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c) scale[r * C + c] = ref_rstd[r] * dy[r * C + c] * (k.weight ? w[c] : 1.0);
    EXPECT_LT(scaled_err(to_host_f64(g, tdx.t), ref_dx, scale), tol) << where;
  }
  EXPECT_LT(rel_err(to_host_f64(g, tdw.t()), ref_dw), grad_tol) << where;
}

}  // namespace

class RmsNormGpu : public ::testing::TestWithParam<DType> {};

TEST_P(RmsNormGpu, MatchesCpuOnPrimeShapes) {
  ATTNLAB_REQUIRE_GPU();
  uint64_t seed = 300;
  for (int64_t rows : {1, 7, 173})
    for (int64_t C : {1, 31, 768, 1031, 4099}) {
      RmsCase k;
      k.rows = rows;
      k.C = C;
      k.seed = seed += 10;
      check_rmsnorm(GetParam(), k);
    }
}

TEST_P(RmsNormGpu, PerHeadQkNorm) {
  ATTNLAB_REQUIRE_GPU();
  for (int64_t d : {64, 128}) {
    RmsCase k;
    k.per_head = true;
    k.rows = 3 * 5 * 7;
    k.C = d;
    k.seed = 400 + d;
    check_rmsnorm(GetParam(), k);
    k.rows = 3 * 5 * 7 * 1024;  // many short rows: thousands per block in the dw fold
    k.seed += 1;
    check_rmsnorm(GetParam(), k);
  }
}

TEST_P(RmsNormGpu, VariantsMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  RmsCase base;
  base.rows = 173;
  base.C = 1536;
  RmsCase k = base;
  k.weight = false;
  k.want_dw = false;
  check_rmsnorm(dt, k);  // no elementwise affine (Diff-Transformer's head norm)
  k = base;
  k.want_dx = false;
  check_rmsnorm(dt, k);
  k = base;
  k.want_dw = false;
  k.accumulate_dx = false;
  check_rmsnorm(dt, k);
  k = base;
  k.shift = 1;
  check_rmsnorm(dt, k);
  k = base;
  k.rows = 3;
  k.C = 8192;
  check_rmsnorm(dt, k);
}

TEST_P(RmsNormGpu, PerHeadBackwardIsBitwiseDeterministic) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  const int64_t rows = 8 * 1024 * 16, d = 128;  // B·T·H of a Qwen3-0.6B micro-batch
  auto x = rand_uniform(rows * d, -2, 3, 17), dy = rand_uniform(rows * d, -1, 1, 18), w = rand_uniform(d, 0.5, 1.5, 19);
  auto dw0 = rand_uniform(d, -1, 1, 20);
  Buffer tx = make_tensor(Device::cuda, dt, {rows, d}, x), tdy = make_tensor(Device::cuda, dt, {rows, d}, dy);
  Buffer tw = make_tensor(Device::cuda, dt, {d}, w), ty(Device::cuda, dt, {rows, d}), tdx(Device::cuda, dt, {rows, d});
  Buffer tr(Device::cuda, DType::f32, {rows});
  Buffer scratch(Device::cuda, DType::f32, {int64_t(rmsnorm_backward_scratch_floats(g, dt, rows, d))});
  rmsnorm_forward(g, {ty.t(), tr.t(), tx.t(), tw.t()});
  std::vector<double> first;
  for (int run = 0; run < 3; ++run) {
    Buffer tdw = make_tensor(Device::cuda, DType::f32, {d}, dw0);
    rmsnorm_backward(g, {tdx.t(), tdw.t(), tdy.t(), tx.t(), tw.t(), tr.t(), scratch.t()});
    auto dw = to_host_f64(g, tdw.t());
    if (run == 0) {
      first = dw;
      EXPECT_GT(max_abs_diff(dw, dw0), 0.0);
    } else {
      EXPECT_EQ(dw, first) << "run " << run;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RmsNormGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
