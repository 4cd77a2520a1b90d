#include "core/ops/layernorm.h"
#include "ops/norm_gpu_support.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {

struct LnCase {
  int64_t rows = 1, C = 1;
  bool weight = true, bias = true;
  bool want_dx = true, accumulate_dx = true;
  bool want_dw = true, want_db = true;
  int shift = 0;  // elements the GPU tensors start past an aligned address
  uint64_t seed = 1;
};

struct LnOut {
  std::vector<double> y, mean, rstd, dx, dw, db;
};

// GPU forward + backward vs the CPU in double on the same (dtype-rounded) inputs.
void check_layernorm(DType dt, const LnCase& k) {
  const int64_t rows = k.rows, C = k.C, n = rows * C;
  const double eps = 1e-5;
  auto x = round_as(dt, rand_uniform(n, -2, 3, k.seed)), dy = round_as(dt, rand_uniform(n, -1, 1, k.seed + 1));
  auto w = round_as(dt, rand_uniform(C, 0.5, 1.5, k.seed + 2)), b = round_as(dt, rand_uniform(C, -1, 1, k.seed + 3));
  auto dx0 = round_as(dt, rand_uniform(n, -1, 1, k.seed + 4));
  auto dw0 = rand_uniform(C, -1, 1, k.seed + 5), db0 = rand_uniform(C, -1, 1, k.seed + 6);
  const std::string where = std::string(dtype_name(dt)) + " rows=" + std::to_string(rows) + " C=" + std::to_string(C);

  // CPU reference (f64).
  LnOut ref;
  {
    Ctx& c = cpu_ctx();
    Buffer tx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), tw = make_tensor(Device::cpu, DType::f64, {C}, w);
    Buffer tb = make_tensor(Device::cpu, DType::f64, {C}, b), tdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);
    Buffer ty(Device::cpu, DType::f64, {rows, C}), tm(Device::cpu, DType::f64, {rows}),
        tr(Device::cpu, DType::f64, {rows});
    Buffer tdx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0);
    Buffer tdw = make_tensor(Device::cpu, DType::f64, {C}, dw0), tdb = make_tensor(Device::cpu, DType::f64, {C}, db0);
    layernorm_forward(c,
                      {ty.t(), tm.t(), tr.t(), tx.t(), k.weight ? tw.t() : Tensor{}, k.bias ? tb.t() : Tensor{}, eps});
    LayerNormBackwardArgs a{k.want_dx ? tdx.t() : Tensor{},
                            k.want_dw ? tdw.t() : Tensor{},
                            k.want_db ? tdb.t() : Tensor{},
                            tdy.t(),
                            tx.t(),
                            k.weight ? tw.t() : Tensor{},
                            tm.t(),
                            tr.t()};
    a.accumulate_dx = k.accumulate_dx;
    layernorm_backward(c, a);
    ref = {to_host_f64(c, ty.t()),  to_host_f64(c, tm.t()),  to_host_f64(c, tr.t()),
           to_host_f64(c, tdx.t()), to_host_f64(c, tdw.t()), to_host_f64(c, tdb.t())};
  }

  Ctx& g = gpu_ctx();
  auto tx = shifted_tensor(dt, rows, C, x, k.shift), tdy = shifted_tensor(dt, rows, C, dy, k.shift);
  auto tw = shifted_tensor(dt, 1, C, w, k.shift, false), tb = shifted_tensor(dt, 1, C, b, k.shift, false);
  auto ty = shifted_tensor(dt, rows, C, {}, k.shift);
  auto tdx = shifted_tensor(dt, rows, C, k.accumulate_dx ? dx0 : std::vector<double>{}, k.shift);
  Buffer tm = make_poisoned(Device::cuda, DType::f32, {rows}), tr = make_poisoned(Device::cuda, DType::f32, {rows});
  Buffer tdw = make_tensor(Device::cuda, DType::f32, {C}, dw0), tdb = make_tensor(Device::cuda, DType::f32, {C}, db0);
  const size_t scratch_n = layernorm_backward_scratch_floats(g, dt, rows, C);
  ASSERT_GT(scratch_n, 0u) << where;
  Buffer scratch = make_poisoned(Device::cuda, DType::f32, {int64_t(scratch_n)});
  layernorm_forward(g, {ty.t, tm.t(), tr.t(), tx.t, k.weight ? tw.t : Tensor{}, k.bias ? tb.t : Tensor{}, eps});
  LayerNormBackwardArgs a{k.want_dx ? tdx.t : Tensor{},
                          k.want_dw ? tdw.t() : Tensor{},
                          k.want_db ? tdb.t() : Tensor{},
                          tdy.t,
                          tx.t,
                          k.weight ? tw.t : Tensor{},
                          tm.t(),
                          tr.t(),
                          scratch.t()};
  a.accumulate_dx = k.accumulate_dx;
  layernorm_backward(g, a);

  const double tol = gpu_tol(dt), stat_tol = 1e-5, grad_tol = dt == DType::bf16 ? 1e-4 : 1e-5;
  EXPECT_LT(rel_err(to_host_f64(g, ty.t), ref.y), tol) << where;
  EXPECT_LT(rel_err(to_host_f64(g, tm.t()), ref.mean), stat_tol) << where;
  EXPECT_LT(rel_err(to_host_f64(g, tr.t()), ref.rstd), stat_tol) << where;
  if (k.want_dx) {
    std::vector<double> scale(n);  // |rstd·g|: the size of the terms dx is made of
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c) scale[r * C + c] = ref.rstd[r] * dy[r * C + c] * (k.weight ? w[c] : 1.0);
    EXPECT_LT(scaled_err(to_host_f64(g, tdx.t), ref.dx, scale), tol) << where;
  }
  // Frozen gradients must come back untouched (their reference is the initial value).
  EXPECT_LT(rel_err(to_host_f64(g, tdw.t()), ref.dw), grad_tol) << where;
  EXPECT_LT(rel_err(to_host_f64(g, tdb.t()), ref.db), grad_tol) << where;
}

}  // namespace

class LayerNormGpu : public ::testing::TestWithParam<DType> {};

TEST_P(LayerNormGpu, MatchesCpuOnPrimeShapes) {
  ATTNLAB_REQUIRE_GPU();
  uint64_t seed = 100;
  for (int64_t rows : {1, 7, 173})
    for (int64_t C : {1, 31, 768, 1031, 4099}) {
      LnCase k;
      k.rows = rows;
      k.C = C;
      k.seed = seed += 10;
      check_layernorm(GetParam(), k);
    }
}

TEST_P(LayerNormGpu, VariantsMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  LnCase base;
  base.rows = 173;
  base.C = 768;
  LnCase k = base;
  k.weight = k.bias = false;
  k.want_dw = k.want_db = false;
  check_layernorm(dt, k);  // no affine at all
  k = base;
  k.want_dx = false;
  check_layernorm(dt, k);  // parameter gradients only
  k = base;
  k.want_dw = k.want_db = false;
  k.accumulate_dx = false;
  check_layernorm(dt, k);  // frozen γ, β; dx overwritten
  k = base;
  k.want_db = false;
  check_layernorm(dt, k);  // dγ without dβ
  k = base;
  k.shift = 1;
  check_layernorm(dt, k);  // unaligned rows: the scalar path
  k = base;
  k.C = 8192;
  k.rows = 5;
  check_layernorm(dt, k);  // the widest row
  k = base;
  k.rows = 20011;
  k.C = 96;
  check_layernorm(dt, k);  // many row slots per block in backward
}

TEST_P(LayerNormGpu, BackwardIsBitwiseDeterministic) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  const int64_t rows = 16411, C = 768;
  auto x = rand_uniform(rows * C, -2, 3, 7), dy = rand_uniform(rows * C, -1, 1, 8), w = rand_uniform(C, 0.5, 1.5, 9);
  auto dw0 = rand_uniform(C, -1, 1, 10);
  Buffer tx = make_tensor(Device::cuda, dt, {rows, C}, x), tdy = make_tensor(Device::cuda, dt, {rows, C}, dy);
  Buffer tw = make_tensor(Device::cuda, dt, {C}, w), ty(Device::cuda, dt, {rows, C});
  Buffer tm(Device::cuda, DType::f32, {rows}), tr(Device::cuda, DType::f32, {rows}), tdx(Device::cuda, dt, {rows, C});
  Buffer scratch(Device::cuda, DType::f32, {int64_t(layernorm_backward_scratch_floats(g, dt, rows, C))});
  layernorm_forward(g, {ty.t(), tm.t(), tr.t(), tx.t(), tw.t(), Tensor{}});
  std::vector<double> first_dw, first_db, first_dx;
  for (int run = 0; run < 3; ++run) {
    Buffer tdw = make_tensor(Device::cuda, DType::f32, {C}, dw0), tdb = make_tensor(Device::cuda, DType::f32, {C}, dw0);
    layernorm_backward(g, {tdx.t(), tdw.t(), tdb.t(), tdy.t(), tx.t(), tw.t(), tm.t(), tr.t(), scratch.t()});
    auto dw = to_host_f64(g, tdw.t()), db = to_host_f64(g, tdb.t()), dx = to_host_f64(g, tdx.t());
    if (run == 0) {
      first_dw = dw;
      first_db = db;
      first_dx = dx;
      EXPECT_GT(max_abs_diff(dw, dw0), 0.0);  // the gradient did arrive
    } else {
      EXPECT_EQ(dw, first_dw) << "run " << run;
      EXPECT_EQ(db, first_db) << "run " << run;
      EXPECT_EQ(dx, first_dx) << "run " << run;
    }
  }
}

TEST(LayerNormGpuErrors, RejectsTooWideRowsAndMissingScratch) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& g = gpu_ctx();
  const int64_t C = kRowNormMaxC + 1;
  Buffer x(Device::cuda, DType::f32, {2, C}), y(Device::cuda, DType::f32, {2, C});
  Buffer m(Device::cuda, DType::f32, {2}), r(Device::cuda, DType::f32, {2});
  EXPECT_THROW(layernorm_forward(g, {y.t(), m.t(), r.t(), x.t(), Tensor{}, Tensor{}}), Error);
  const int64_t C2 = 64;
  Buffer x2 = make_tensor(Device::cuda, DType::f32, {3, C2}, rand_uniform(3 * C2, -1, 1, 5));
  Buffer y2(Device::cuda, DType::f32, {3, C2}),
      dy2 = make_tensor(Device::cuda, DType::f32, {3, C2}, rand_uniform(3 * C2, -1, 1, 6));
  Buffer m2(Device::cuda, DType::f32, {3}), r2(Device::cuda, DType::f32, {3}), dx2(Device::cuda, DType::f32, {3, C2});
  Buffer db2 = make_tensor(Device::cuda, DType::f32, {C2}, rand_uniform(C2, -1, 1, 7));
  layernorm_forward(g, {y2.t(), m2.t(), r2.t(), x2.t(), Tensor{}, Tensor{}});
  EXPECT_THROW(layernorm_backward(g, {dx2.t(), Tensor{}, db2.t(), dy2.t(), x2.t(), Tensor{}, m2.t(), r2.t()}), Error);
  g.synchronize();
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LayerNormGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
