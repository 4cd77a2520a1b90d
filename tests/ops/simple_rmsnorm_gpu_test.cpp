// SimpleRMSNorm on the GPU (f32, bf16) against the CPU op in f64 on the same (dtype-rounded)
// inputs, with odd row counts and widths that are not multiples of the block size. The backward
// runs on the row norms' kernel (cuda/row_norm.cuh): dweight folded per block into a scratch and
// summed in a fixed order, so it is also checked for bitwise reproducibility at the study's size.
#include <algorithm>
#include <cstring>

#include "core/ops/row_norm.h"
#include "core/ops/simple_rmsnorm.h"
#include "ops/norm_gpu_support.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// Elements whose bits differ (doubles widened exactly from f32/bf16, so bits of the device values).
int64_t differing_bits(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return int64_t(std::max(a.size(), b.size()));
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(double)) != 0;
  return n;
}

int64_t non_finite(const std::vector<double>& v) {
  int64_t n = 0;
  for (double e : v) n += !std::isfinite(e);
  return n;
}

struct SimpleCase {
  int64_t rows = 1, C = 1;
  bool want_dx = true, want_dw = true, accumulate_dx = false;
  int shift = 0;  // elements: a shift of 1 forces the scalar (unaligned) kernel path
  uint64_t seed = 1;
};

std::string where_of(DType dt, const SimpleCase& k) {
  return std::string(dtype_name(dt)) + " rows=" + std::to_string(k.rows) + " C=" + std::to_string(k.C) +
         (k.want_dx ? "" : " no-dx") + (k.want_dw ? "" : " no-dw") + (k.accumulate_dx ? " acc" : "") +
         (k.shift ? " shift" : "");
}

void check_simple_rmsnorm(DType dt, const SimpleCase& k) {
  const int64_t rows = k.rows, C = k.C, n = rows * C;
  const auto x = round_as(dt, rand_uniform(n, -2, 3, k.seed)), dy = round_as(dt, rand_uniform(n, -1, 1, k.seed + 1));
  const auto w = round_as(dt, rand_uniform(C, 0.5, 1.5, k.seed + 2));
  const auto dx0 = round_as(dt, rand_uniform(n, -1, 1, k.seed + 3)), dw0 = rand_uniform(C, -1, 1, k.seed + 4);
  const std::string where = where_of(dt, k);

  Ctx& c = cpu_ctx();
  Buffer cx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), cw = make_tensor(Device::cpu, DType::f64, {C}, w);
  Buffer cdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);
  Buffer cy(Device::cpu, DType::f64, {rows, C}), cd(Device::cpu, DType::f64, {rows});
  Buffer cdx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0), cdw = make_tensor(Device::cpu, DType::f64, {C}, dw0);
  simple_rmsnorm_forward(c, {cy, cd, cx, cw, 1e-8});
  SimpleRmsNormBackwardArgs ca;
  ca.dx = k.want_dx ? cdx.t() : Tensor{};
  ca.dweight = k.want_dw ? cdw.t() : Tensor{};
  ca.dy = cdy;
  ca.x = cx;
  ca.weight = cw;
  ca.den = cd;
  ca.accumulate_dx = k.accumulate_dx;
  simple_rmsnorm_backward(c, ca);

  Ctx& g = gpu_ctx();
  auto gx = shifted_tensor(dt, rows, C, x, k.shift), gdy = shifted_tensor(dt, rows, C, dy, k.shift);
  auto gw = shifted_tensor(dt, 1, C, w, k.shift, false), gy = shifted_tensor(dt, rows, C, {}, k.shift);
  auto gdx = shifted_tensor(dt, rows, C, k.accumulate_dx ? dx0 : std::vector<double>{}, k.shift);
  Buffer gd = make_poisoned(Device::cuda, DType::f32, {rows}), gdw = make_tensor(Device::cuda, DType::f32, {C}, dw0);
  const size_t scratch_n = simple_rmsnorm_backward_scratch_floats(g, dt, rows, C);
  Buffer scratch = make_poisoned(Device::cuda, DType::f32, {int64_t(std::max<size_t>(1, scratch_n))});
  simple_rmsnorm_forward(g, {gy.t, gd, gx.t, gw.t, 1e-8});
  SimpleRmsNormBackwardArgs ga;
  ga.dx = k.want_dx ? gdx.t : Tensor{};
  ga.dweight = k.want_dw ? gdw.t() : Tensor{};
  ga.dy = gdy.t;
  ga.x = gx.t;
  ga.weight = gw.t;
  ga.den = gd;
  ga.scratch = k.want_dw ? scratch.t() : Tensor{};  // dx alone needs none
  ga.accumulate_dx = k.accumulate_dx;
  simple_rmsnorm_backward(g, ga);

  const double tol = gpu_tol(dt);
  EXPECT_LT(rel_err(to_host_f64(g, gy.t), to_host_f64(c, cy)), tol) << where << " y";
  EXPECT_LT(rel_err(to_host_f64(g, gd), to_host_f64(c, cd)), 1e-5) << where << " den";
  if (k.want_dx) {
    // dx = (w·dy − y·mean(w·dy·y))/den cancels almost completely when C is tiny (C = 1: dx is
    // O(eps)), so its error is measured against the size of the terms that cancel, max |w·dy|/den.
    const auto want_dx = to_host_f64(c, cdx), den = to_host_f64(c, cd);
    double scale = 0;
    for (double v : want_dx) scale = std::max(scale, std::fabs(v));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < C; ++j) scale = std::max(scale, std::fabs(w[j] * dy[r * C + j]) / den[r]);
    double worst = 0;
    const auto got_dx = to_host_f64(g, gdx.t);
    for (size_t i = 0; i < got_dx.size(); ++i) {
      const double e = std::fabs(got_dx[i] - want_dx[i]);
      worst = std::isfinite(e) ? std::max(worst, e) : INFINITY;  // a NaN left in dx fails
    }
    EXPECT_LT(worst / scale, tol) << where << " dx";
  }
  // dweight is accumulated in f32 from dtype-rounded inputs on both sides, so bf16 needs no more
  // room than f32 beyond the f32 summation of the ~16k-row columns.
  const auto got_dw = to_host_f64(g, gdw.t()), want_dw = to_host_f64(c, cdw);
  EXPECT_LT(rel_err(got_dw, want_dw), dt == DType::bf16 ? 1e-4 : 1e-5) << where << " dw";
  if (!k.want_dw) EXPECT_EQ(got_dw, round_as(DType::f32, dw0)) << where << " dweight not asked for, so untouched";
}

class SimpleRmsNormGpu : public ::testing::TestWithParam<DType> {};

TEST_P(SimpleRmsNormGpu, MatchesTheCpuOnOddShapes) {
  ATTNLAB_REQUIRE_GPU();
  uint64_t seed = 1;
  for (auto [rows, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 37}, {131, 513}, {29, 512}, {3, 8192}})
    for (bool acc : {false, true}) {
      SimpleCase k;
      k.rows = rows;
      k.C = C;
      k.accumulate_dx = acc;
      k.seed = seed += 10;
      check_simple_rmsnorm(GetParam(), k);
    }
}

// The differential study's shape (B·T = 32·511 rows of D = 512) and a prime-ish neighbour whose
// width takes the scalar path: thousands of rows per block in the dweight fold.
TEST_P(SimpleRmsNormGpu, MatchesTheCpuAtTheStudySize) {
  ATTNLAB_REQUIRE_GPU();
  for (auto [rows, C] : std::vector<std::pair<int64_t, int64_t>>{{16351, 509}, {16352, 512}}) {
    SimpleCase k;
    k.rows = rows;
    k.C = C;
    k.accumulate_dx = C == 512;
    k.seed = 100 + uint64_t(C);
    check_simple_rmsnorm(GetParam(), k);
  }
}

TEST_P(SimpleRmsNormGpu, VariantsMatchTheCpu) {
  ATTNLAB_REQUIRE_GPU();
  SimpleCase base;
  base.rows = 173;
  base.C = 1536;
  base.seed = 50;
  SimpleCase k = base;
  k.want_dw = false;  // frozen scale: no scratch needed
  check_simple_rmsnorm(GetParam(), k);
  k = base;
  k.want_dx = false;  // first layer's input needs no gradient
  check_simple_rmsnorm(GetParam(), k);
  k = base;
  k.shift = 1;  // unaligned pointers: scalar loads
  k.accumulate_dx = true;
  check_simple_rmsnorm(GetParam(), k);
}

// Two backward calls on the same inputs give the same bits (no float atomics in the dweight sum).
TEST_P(SimpleRmsNormGpu, BackwardIsBitwiseDeterministicAtTheStudySize) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  for (auto [rows, C] : std::vector<std::pair<int64_t, int64_t>>{{16351, 509}, {16352, 512}}) {
    const std::string where = std::string(dtype_name(dt)) + " " + std::to_string(rows) + "x" + std::to_string(C);
    auto x = rand_uniform(rows * C, -2, 3, 17), dy = rand_uniform(rows * C, -1, 1, 18);
    auto w = rand_uniform(C, 0.5, 1.5, 19), dw0 = rand_uniform(C, -1, 1, 20);
    Buffer tx = make_tensor(Device::cuda, dt, {rows, C}, x), tdy = make_tensor(Device::cuda, dt, {rows, C}, dy);
    Buffer tw = make_tensor(Device::cuda, dt, {C}, w), ty(Device::cuda, dt, {rows, C});
    Buffer td(Device::cuda, DType::f32, {rows});
    Buffer scratch(Device::cuda, DType::f32, {int64_t(simple_rmsnorm_backward_scratch_floats(g, dt, rows, C))});
    simple_rmsnorm_forward(g, {ty.t(), td.t(), tx.t(), tw.t(), 1e-8});
    std::vector<double> first_dw, first_dx;
    for (int run = 0; run < 2; ++run) {
      Buffer tdw = make_tensor(Device::cuda, DType::f32, {C}, dw0), tdx = make_poisoned(Device::cuda, dt, {rows, C});
      SimpleRmsNormBackwardArgs a;
      a.dx = tdx;
      a.dweight = tdw;
      a.dy = tdy;
      a.x = tx;
      a.weight = tw;
      a.den = td;
      a.scratch = scratch;
      simple_rmsnorm_backward(g, a);
      auto dw = to_host_f64(g, tdw.t()), dx = to_host_f64(g, tdx.t());
      if (run == 0) {
        first_dw = dw;
        first_dx = dx;
        EXPECT_GT(max_abs_diff(dw, dw0), 0.0) << where << ": the gradient did arrive";
        EXPECT_EQ(non_finite(dx), 0) << where << ": every dx element written (dx starts as NaN)";
      } else {
        EXPECT_EQ(differing_bits(dw, first_dw), 0) << where << " dweight";
        EXPECT_EQ(differing_bits(dx, first_dx), 0) << where << " dx";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SimpleRmsNormGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(SimpleRmsNormGpuErrors, RejectsMissingScratchAndTooWideRows) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& g = gpu_ctx();
  const int64_t rows = 3, C = 64;
  Buffer x = make_tensor(Device::cuda, DType::f32, {rows, C}, rand_uniform(rows * C, -1, 1, 5));
  Buffer dy = make_tensor(Device::cuda, DType::f32, {rows, C}, rand_uniform(rows * C, -1, 1, 6));
  Buffer w = make_tensor(Device::cuda, DType::f32, {C}, rand_uniform(C, 0.5, 1.5, 7));
  Buffer y(Device::cuda, DType::f32, {rows, C}), d(Device::cuda, DType::f32, {rows});
  Buffer dx(Device::cuda, DType::f32, {rows, C}), dw = make_tensor(Device::cuda, DType::f32, {C}, rand_uniform(C, -1, 1, 8));
  simple_rmsnorm_forward(g, {y.t(), d.t(), x.t(), w.t(), 1e-8});
  SimpleRmsNormBackwardArgs a;
  a.dx = dx;
  a.dweight = dw;
  a.dy = dy;
  a.x = x;
  a.weight = w;
  a.den = d;
  EXPECT_THROW(simple_rmsnorm_backward(g, a), Error);  // dweight without scratch
  const int64_t wide = kRowNormMaxC + 1;
  EXPECT_THROW(simple_rmsnorm_backward_scratch_floats(g, DType::f32, rows, wide), Error);
  g.synchronize();
}

}  // namespace
}  // namespace attnlab::test
