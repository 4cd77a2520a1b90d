// SimpleRMSNorm on the GPU (f32, bf16) against the CPU op in f64 on the same (dtype-rounded)
// inputs, with odd row counts and widths that are not multiples of the block size.
#include "core/ops/simple_rmsnorm.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

void check_simple_rmsnorm(DType dt, int64_t rows, int64_t C, bool accumulate_dx, uint64_t seed) {
  const int64_t n = rows * C;
  const auto x = round_as(dt, rand_uniform(n, -2, 3, seed)), dy = round_as(dt, rand_uniform(n, -1, 1, seed + 1));
  const auto w = round_as(dt, rand_uniform(C, 0.5, 1.5, seed + 2));
  const auto dx0 = round_as(dt, rand_uniform(n, -1, 1, seed + 3)), dw0 = rand_uniform(C, -1, 1, seed + 4);
  const std::string where = std::string(dtype_name(dt)) + " rows=" + std::to_string(rows) + " C=" + std::to_string(C);

  Ctx& c = cpu_ctx();
  Buffer cx = make_tensor(Device::cpu, DType::f64, {rows, C}, x), cw = make_tensor(Device::cpu, DType::f64, {C}, w);
  Buffer cdy = make_tensor(Device::cpu, DType::f64, {rows, C}, dy);
  Buffer cy(Device::cpu, DType::f64, {rows, C}), cd(Device::cpu, DType::f64, {rows});
  Buffer cdx = make_tensor(Device::cpu, DType::f64, {rows, C}, dx0), cdw = make_tensor(Device::cpu, DType::f64, {C}, dw0);
  simple_rmsnorm_forward(c, {cy, cd, cx, cw, 1e-8});
  SimpleRmsNormBackwardArgs ca;
  ca.dx = cdx;
  ca.dweight = cdw;
  ca.dy = cdy;
  ca.x = cx;
  ca.weight = cw;
  ca.den = cd;
  ca.accumulate_dx = accumulate_dx;
  simple_rmsnorm_backward(c, ca);

  Ctx& g = gpu_ctx();
  Buffer gx = make_tensor(Device::cuda, dt, {rows, C}, x), gw = make_tensor(Device::cuda, dt, {C}, w);
  Buffer gdy = make_tensor(Device::cuda, dt, {rows, C}, dy);
  Buffer gy = make_poisoned(Device::cuda, dt, {rows, C}), gd = make_poisoned(Device::cuda, DType::f32, {rows});
  Buffer gdx = accumulate_dx ? make_tensor(Device::cuda, dt, {rows, C}, dx0) : make_poisoned(Device::cuda, dt, {rows, C});
  Buffer gdw = make_tensor(Device::cuda, DType::f32, {C}, dw0);
  simple_rmsnorm_forward(g, {gy, gd, gx, gw, 1e-8});
  SimpleRmsNormBackwardArgs ga;
  ga.dx = gdx;
  ga.dweight = gdw;
  ga.dy = gdy;
  ga.x = gx;
  ga.weight = gw;
  ga.den = gd;
  ga.accumulate_dx = accumulate_dx;
  simple_rmsnorm_backward(g, ga);

  const double tol = gpu_tol(dt);
  EXPECT_LT(rel_err(to_host_f64(g, gy), to_host_f64(c, cy)), tol) << where << " y";
  EXPECT_LT(rel_err(to_host_f64(g, gd), to_host_f64(c, cd)), 1e-5) << where << " den";
  // dx = (w·dy − y·mean(w·dy·y))/den cancels almost completely when C is tiny (C = 1: dx is
  // O(eps)), so its error is measured against the size of the terms that cancel, max |w·dy|/den.
  const auto want_dx = to_host_f64(c, cdx), den = to_host_f64(c, cd);
  double scale = 0;
  for (double v : want_dx) scale = std::max(scale, std::fabs(v));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < C; ++k) scale = std::max(scale, std::fabs(w[k] * dy[r * C + k]) / den[r]);
  double worst = 0;
  const auto got_dx = to_host_f64(g, gdx);
  for (size_t i = 0; i < got_dx.size(); ++i) worst = std::max(worst, std::fabs(got_dx[i] - want_dx[i]));
  EXPECT_LT(worst / scale, tol) << where << " dx";
  EXPECT_LT(rel_err(to_host_f64(g, gdw), to_host_f64(c, cdw)), dt == DType::bf16 ? 1e-2 : 1e-5) << where << " dw";
}

TEST(SimpleRmsNormGpu, MatchesTheCpuOnOddShapes) {
  ATTNLAB_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    check_simple_rmsnorm(dt, 1, 1, false, 1);
    check_simple_rmsnorm(dt, 7, 37, true, 2);
    check_simple_rmsnorm(dt, 131, 513, false, 3);  // 513 > 2·256 threads
    check_simple_rmsnorm(dt, 29, 512, true, 4);    // the seed model's width
  }
}

}  // namespace
}  // namespace attnlab::test
