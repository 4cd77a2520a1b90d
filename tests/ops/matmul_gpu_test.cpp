#include "core/ops/matmul.h"
#include "ops/matmul_ref.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {
// Operand dtype, output dtype, and whether C accumulates (beta = 1): the three ways the
// training step uses the GEMM (fp32, bf16, and bf16 operands accumulating into fp32 dW).
struct GemmDtypes {
  DType ab, cd;
  bool accumulate;
  const char* name;
};
const GemmDtypes kDtypes[] = {{DType::f32, DType::f32, false, "f32"},
                              {DType::bf16, DType::bf16, false, "bf16"},
                              {DType::bf16, DType::f32, true, "bf16_into_f32_accumulate"}};

// Relative error of the GPU against the f64 reference: the operands are exactly representable,
// so only the accumulation (fp32) and the output rounding remain.
double gemm_tol(DType cd) { return cd == DType::bf16 ? 1e-2 : 1e-5; }
}  // namespace

class MatmulGpu : public ::testing::TestWithParam<GemmDtypes> {};

TEST_P(MatmulGpu, MatchesCpuAtOddShapesEveryLayout) {
  ATTNLAB_REQUIRE_GPU();
  const GemmDtypes d = GetParam();
  uint64_t seed = 1000;
  for (auto [M, N, K] : {std::array<int64_t, 3>{1, 1, 1}, {7, 13, 5}, {173, 409, 71}, {64, 3571, 29}})
    for (int batched = 0; batched < 2; ++batched)
      for (int t = 0; t < 4; ++t)
        for (bool bias : {false, true}) {
          GemmCase g;
          g.M = M, g.N = N, g.K = K;
          g.ta = t & 1, g.tb = t & 2;
          g.batch = batched ? 3 : 1;
          g.pad_ld = batched ? 3 : 0;  // odd lds and strides: unaligned batches
          g.pad_stride = batched ? 5 : 0;
          g.alpha = batched ? 0.75 : 1.0;
          g.beta = d.accumulate ? 1.0 : (batched && !bias ? 0.5 : 0.0);
          g.bias = bias;
          const double err = run_gemm_case(Device::cuda, d.ab, d.cd, g, seed++);
          EXPECT_LT(err, gemm_tol(d.cd)) << d.name << " " << g.str();
        }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MatmulGpu, ::testing::ValuesIn(kDtypes),
                         [](const auto& i) { return std::string(i.param.name); });

TEST(MatmulGpuTf32, Tf32IsOptInAndClose) {
  ATTNLAB_REQUIRE_GPU();
  GemmCase g;
  g.M = 173, g.N = 409, g.K = 71, g.tf32 = true;
  const double err = run_gemm_case(Device::cuda, DType::f32, DType::f32, g, 5);
  EXPECT_LT(err, 5e-3);  // TF32 inputs carry 10 mantissa bits
}

// Attention-shaped use: per-head Q·Kᵀ read straight out of a fused [T, 3C] QKV buffer, heads
// interleaved (batch stride d, ld 3C), K starting C elements in: pointers and batches are only
// element-aligned, which the plan's alignment preferences must handle.
TEST(MatmulGpuSlices, InterleavedHeadsFromFusedQkv) {
  ATTNLAB_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    const int64_t T = 37, H = 3, dh = 5, C = H * dh;
    auto qkv = round_as(dt, rand_uniform(size_t(T * 3 * C), -1, 1, 11));
    Buffer tqkv = make_tensor(Device::cuda, dt, {T, 3 * C}, qkv, "qkv");
    Buffer s = make_poisoned(Device::cuda, dt, {H, T, T}, "scores");
    Tensor q = tqkv.t(), k = tqkv.t();
    k.data = static_cast<char*>(k.data) + size_t(C) * dtype_size(dt);
    q.ndim = k.ndim = 1;
    q.shape = {T * 3 * C, 0, 0, 0};
    k.shape = {T * 3 * C - C, 0, 0, 0};
    MatmulArgs m;
    m.c = s.t(), m.a = q, m.b = k;
    m.M = T, m.N = T, m.K = dh, m.batch = H, m.trans_b = true;
    m.lda = m.ldb = 3 * C, m.stride_a = m.stride_b = dh;
    m.alpha = 0.5f;
    matmul(gpu_ctx(), m);
    std::vector<double> want(size_t(H * T * T));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          double acc = 0;
          for (int64_t e = 0; e < dh; ++e) acc += qkv[i * 3 * C + h * dh + e] * qkv[j * 3 * C + C + h * dh + e];
          want[(h * T + i) * T + j] = 0.5 * acc;
        }
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), s.t()), want), gemm_tol(dt)) << dtype_name(dt);
  }
}

namespace {
struct LinearRef {
  std::vector<double> y, dx, dw, db;
};
// P1 in double on rounded inputs; dw/db include their initial values (accumulation).
LinearRef linear_ref(int64_t rows, int64_t in, int64_t out, const std::vector<double>& x,
                     const std::vector<double>& w, const std::vector<double>& b,
                     const std::vector<double>& dy, const std::vector<double>& dw0,
                     const std::vector<double>& db0) {
  LinearRef r{std::vector<double>(size_t(rows * out)), std::vector<double>(size_t(rows * in), 0.0), dw0, db0};
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t j = 0; j < in; ++j) s += x[i * in + j] * w[o * in + j];
      r.y[i * out + o] = s;
      const double g = dy[i * out + o];
      r.db[o] += g;
      for (int64_t j = 0; j < in; ++j) {
        r.dx[i * in + j] += g * w[o * in + j];
        r.dw[o * in + j] += g * x[i * in + j];
      }
    }
  return r;
}
}  // namespace

class LinearGpu : public ::testing::TestWithParam<DType> {};

TEST_P(LinearGpu, ForwardBackwardMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& c = gpu_ctx();
  const int64_t rows = 173, in = 71, out = 409;
  auto x = round_as(dt, rand_uniform(size_t(rows * in), -1, 1, 21));
  auto w = round_as(dt, rand_uniform(size_t(out * in), -1, 1, 22));
  auto b = round_as(dt, rand_uniform(size_t(out), -1, 1, 23));
  auto dy = round_as(dt, rand_uniform(size_t(rows * out), -1, 1, 24));
  auto dw0 = round_as(DType::f32, rand_uniform(size_t(out * in), -1, 1, 25));
  auto db0 = round_as(DType::f32, rand_uniform(size_t(out), -1, 1, 26));
  auto ref = linear_ref(rows, in, out, x, w, b, dy, dw0, db0);

  Buffer tx = make_tensor(Device::cuda, dt, {rows, in}, x, "x"), tw = make_tensor(Device::cuda, dt, {out, in}, w, "w");
  Buffer tb = make_tensor(Device::cuda, dt, {out}, b, "b"), tdy = make_tensor(Device::cuda, dt, {rows, out}, dy, "dy");
  Buffer ty = make_poisoned(Device::cuda, dt, {rows, out}, "y"), tdx = make_poisoned(Device::cuda, dt, {rows, in}, "dx");
  Buffer tdw = make_tensor(Device::cuda, DType::f32, {out, in}, dw0, "dw");
  Buffer tdb = make_tensor(Device::cuda, DType::f32, {out}, db0, "db");
  linear_forward(c, {ty.t(), tx.t(), tw.t(), tb.t()});
  linear_backward(c, {tdy.t(), tx.t(), tw.t(), tdx.t(), tdw.t(), tdb.t()});
  const double tol = gpu_tol(dt);
  EXPECT_LT(rel_err(to_host_f64(c, ty.t()), ref.y), tol);
  EXPECT_LT(rel_err(to_host_f64(c, tdx.t()), ref.dx), tol);
  // fp32 accumulation of exactly-representable products: fp32 accuracy even for bf16 operands.
  EXPECT_LT(rel_err(to_host_f64(c, tdw.t()), ref.dw), 1e-5);
  EXPECT_LT(rel_err(to_host_f64(c, tdb.t()), ref.db), 1e-5);

  // accumulate_dx adds dY·W on top of what dX holds.
  linear_backward(c, {tdy.t(), tx.t(), tw.t(), tdx.t(), Tensor{}, Tensor{}, true});
  std::vector<double> twice(ref.dx.size());
  for (size_t i = 0; i < twice.size(); ++i) twice[i] = 2 * ref.dx[i];
  EXPECT_LT(rel_err(to_host_f64(c, tdx.t()), twice), tol);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LinearGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

#if ATTNLAB_WITH_CUDA  // the two tests below call the cuda:: entry points directly
// A frozen weight builds and runs no dW product; a repeated shape builds no new plan.
TEST(LinearGpuPlans, FrozenSkipsGemmAndRepeatsReusePlans) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& c = gpu_ctx();
  const int64_t rows = 59, in = 23, out = 31;  // shapes no other test uses
  auto v = [](int64_t n, uint64_t s) { return round_as(DType::bf16, rand_uniform(size_t(n), -1, 1, s)); };
  Buffer x = make_tensor(Device::cuda, DType::bf16, {rows, in}, v(rows * in, 1), "x");
  Buffer w = make_tensor(Device::cuda, DType::bf16, {out, in}, v(out * in, 2), "w");
  Buffer dy = make_tensor(Device::cuda, DType::bf16, {rows, out}, v(rows * out, 3), "dy");
  Buffer dx = make_poisoned(Device::cuda, DType::bf16, {rows, in}, "dx");
  auto dw0 = rand_uniform(size_t(out * in), -1, 1, 4);
  Buffer dw = make_tensor(Device::cuda, DType::f32, {out, in}, dw0, "dw");

  const int64_t before = cuda::matmul_plans_built();
  linear_backward(c, {dy.t(), x.t(), w.t(), dx.t(), Tensor{}, Tensor{}});
  EXPECT_EQ(cuda::matmul_plans_built(), before + 1);  // dX only
  linear_backward(c, {dy.t(), x.t(), w.t(), dx.t(), Tensor{}, Tensor{}});
  EXPECT_EQ(cuda::matmul_plans_built(), before + 1);  // reused
  linear_backward(c, {dy.t(), x.t(), w.t(), dx.t(), dw.t(), Tensor{}});
  EXPECT_EQ(cuda::matmul_plans_built(), before + 2);  // dW's product now runs
  for (int i = 0; i < 3; ++i) linear_backward(c, {dy.t(), x.t(), w.t(), dx.t(), dw.t(), Tensor{}});
  EXPECT_EQ(cuda::matmul_plans_built(), before + 2);
  auto got = to_host_f64(c, dw.t());
  double moved = 0;
  for (size_t i = 0; i < got.size(); ++i) moved = std::max(moved, std::fabs(got[i] - dw0[i]));
  EXPECT_GT(moved, 1e-3);  // four accumulations happened
  EXPECT_TRUE(std::isfinite(moved));
}

// Column sums over many rows: fp32-accurate, and bitwise identical from run to run.
TEST(BiasGradGpu, DeterministicAndAccurate) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& c = gpu_ctx();
  for (DType dt : {DType::f32, DType::bf16})
    // Odd widths take the scalar path, multiples of 8 the 16-byte one; tall ones split rows.
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {10007, 77}, {3, 3571}, {1031, 33},
                              {4099, 776}, {7, 264}, {2053, 8}}) {
      auto dy = round_as(dt, rand_uniform(size_t(rows * cols), -1, 1, uint64_t(rows + cols)));
      auto db0 = round_as(DType::f32, rand_uniform(size_t(cols), -1, 1, 9));
      Buffer tdy = make_tensor(Device::cuda, dt, {rows, cols}, dy, "dy");
      Buffer d1 = make_tensor(Device::cuda, DType::f32, {cols}, db0, "db1");
      Buffer d2 = make_tensor(Device::cuda, DType::f32, {cols}, db0, "db2");
      cuda::bias_grad(c, tdy.t(), d1.t(), rows, cols);
      cuda::bias_grad(c, tdy.t(), d2.t(), rows, cols);
      auto want = db0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols; ++k) want[size_t(k)] += dy[size_t(r * cols + k)];
      auto g1 = to_host_f64(c, d1.t()), g2 = to_host_f64(c, d2.t());
      EXPECT_LT(rel_err(g1, want), 1e-5) << dtype_name(dt) << " " << rows << "x" << cols;
      EXPECT_EQ(g1, g2) << "bias_grad is not deterministic";
    }
}
#endif

}  // namespace attnlab::test
