#include <cmath>

#include "core/ops/cross_entropy.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

std::vector<int32_t> make_targets(int64_t n, int64_t v, uint64_t seed) {
  auto t = rand_ints(size_t(n), 0, int32_t(v), seed);
  for (int64_t i = 2; i < n; i += 5) t[size_t(i)] = kIgnoreIndex;
  if (n > 3) t[3] = int32_t(v - 1);  // the last class: the tail of the last pack
  return t;
}

// The CPU op in double on the same (rounded) inputs.
struct CpuReference {
  std::vector<double> loss, lse, dlogits, mean;
};
CpuReference cpu_reference(const std::vector<double>& x, const std::vector<int32_t>& t, int64_t n, int64_t v,
                           double dloss, double count) {
  Ctx& c = cpu_ctx();
  Buffer logits = make_tensor(Device::cpu, DType::f64, {n, v}, x);
  Buffer targets = make_ids(Device::cpu, {n}, t);
  Buffer loss(Device::cpu, DType::f64, {n}), lse(Device::cpu, DType::f64, {n}), mean(Device::cpu, DType::f64, {1});
  cross_entropy_forward(c, {logits.t(), targets.t(), loss.t(), lse.t()});
  cross_entropy_mean(c, {loss.t(), mean.t(), count, false});
  cross_entropy_backward(c, {logits.t(), targets.t(), lse.t(), logits.t(), dloss, count});
  return {to_host_f64(c, loss.t()), to_host_f64(c, lse.t()), to_host_f64(c, logits.t()), to_host_f64(c, mean.t())};
}

struct GpuRun {
  std::vector<double> loss, lse, dlogits, dlogits_in_place, mean;
};
// Forward, mean, backward into a separate buffer, then backward in place over the logits.
// `offset` shifts the separate dlogits buffer by that many elements, so that it is aligned
// differently from the logits (the kernel's scalar path).
GpuRun gpu_run(DType dt, const std::vector<double>& x, const std::vector<int32_t>& t, int64_t n, int64_t v,
               double dloss, double count, int64_t offset = 0) {
  Ctx& g = gpu_ctx();
  Buffer logits = make_tensor(Device::cuda, dt, {n, v}, x, "logits");
  Buffer targets = make_ids(Device::cuda, {n}, t, "targets");
  Buffer loss = make_poisoned(Device::cuda, DType::f32, {n}, "loss");
  Buffer lse = make_poisoned(Device::cuda, DType::f32, {n}, "lse");
  Buffer mean = make_poisoned(Device::cuda, DType::f32, {1}, "mean");
  Buffer dstore = make_poisoned(Device::cuda, dt, {n * v + offset}, "dlogits");
  Tensor dlogits = dstore.t().slice0(offset, offset + n * v).view({n, v});
  cross_entropy_forward(g, {logits.t(), targets.t(), loss.t(), lse.t()});
  cross_entropy_mean(g, {loss.t(), mean.t(), count, false});
  cross_entropy_backward(g, {logits.t(), targets.t(), lse.t(), dlogits, dloss, count});
  GpuRun r{to_host_f64(g, loss.t()), to_host_f64(g, lse.t()), to_host_f64(g, dlogits), {}, to_host_f64(g, mean.t())};
  cross_entropy_backward(g, {logits.t(), targets.t(), lse.t(), logits.t(), dloss, count});
  r.dlogits_in_place = to_host_f64(g, logits.t());
  return r;
}

class CrossEntropyGpu : public ::testing::TestWithParam<DType> {};

// N ∈ {1, 7, 129} take the split-row forward for large V; N = 293 takes one block per row.
TEST_P(CrossEntropyGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int64_t n : {1, 7, 129})
    for (int64_t v : {3, 1031, 50257, 151936}) shapes.push_back({n, v});
  shapes.push_back({293, 50257});
  for (auto [n, v] : shapes) {
    SCOPED_TRACE("N=" + std::to_string(n) + " V=" + std::to_string(v));
    auto x = round_as(dt, rand_normal(size_t(n * v), 2.0, uint64_t(n * 7 + v)));
    auto t = make_targets(n, v, uint64_t(n + v));
    if (n == 1) t[0] = int32_t(v / 2);
    const double count = double(count_valid_targets(t.data(), n)) + 3, dloss = 1.25;
    auto ref = cpu_reference(x, t, n, v, dloss, count);
    auto got = gpu_run(dt, x, t, n, v, dloss, count);
    // Loss and lse are fp32 arithmetic on exactly representable inputs, for bf16 too.
    EXPECT_LT(rel_err(got.loss, ref.loss), 1e-5);
    EXPECT_LT(rel_err(got.lse, ref.lse), 1e-6);
    EXPECT_LT(rel_err(got.mean, ref.mean), 1e-5);
    EXPECT_LT(rel_err(got.dlogits, ref.dlogits), gpu_tol(dt));
    ASSERT_EQ(got.dlogits_in_place.size(), got.dlogits.size());
    for (size_t i = 0; i < got.dlogits.size(); ++i)
      ASSERT_EQ(got.dlogits_in_place[i], got.dlogits[i]) << "in-place differs at " << i;
  }
}

TEST_P(CrossEntropyGpu, MisalignedSeparateGradient) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t n = 11, v = 4099;
  auto x = round_as(dt, rand_normal(size_t(n * v), 2.0, 81));
  auto t = make_targets(n, v, 82);
  const double count = double(count_valid_targets(t.data(), n));
  auto ref = cpu_reference(x, t, n, v, 1.0, count);
  auto got = gpu_run(dt, x, t, n, v, 1.0, count, /*offset=*/1);
  EXPECT_LT(rel_err(got.dlogits, ref.dlogits), gpu_tol(dt));
  EXPECT_LT(rel_err(got.dlogits_in_place, ref.dlogits), gpu_tol(dt));
}

TEST_P(CrossEntropyGpu, LargeLogitsDoNotOverflow) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (int64_t n : {1, 300}) {
    const int64_t v = 50257;
    auto x = rand_uniform(size_t(n * v), -6, 6, 91);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < v; ++j) x[size_t(i * v + j)] += (i % 2 ? -1e4 : 1e4);
    x = round_as(dt, x);
    auto t = make_targets(n, v, 92);
    const double count = double(count_valid_targets(t.data(), n));
    auto ref = cpu_reference(x, t, n, v, 1.0, count);
    auto got = gpu_run(dt, x, t, n, v, 1.0, count);
    EXPECT_LT(rel_err(got.loss, ref.loss), 1e-5) << "N=" << n;
    EXPECT_LT(rel_err(got.lse, ref.lse), 1e-6) << "N=" << n;
    // exp(x − lse) with |lse| = 1e4 in fp32: lse's own rounding (~5e-4) moves every probability
    // by that relative amount; bf16 output rounding comes on top.
    EXPECT_LT(rel_err(got.dlogits, ref.dlogits), dt == DType::bf16 ? gpu_tol(dt) : 2e-3) << "N=" << n;
  }
}

// Out-of-range targets cannot throw on the GPU: that row's loss and gradient are NaN, other rows
// are unaffected, and nothing is read out of bounds (compute-sanitizer checks the latter).
TEST_P(CrossEntropyGpu, BadTargetGivesNaNRow) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (int64_t n : {4, 600}) {
    const int64_t v = 1031 * 9;
    auto x = round_as(dt, rand_normal(size_t(n * v), 1.0, 101));
    auto t = make_targets(n, v, 102);
    t[0] = int32_t(v);
    t[1] = -7;
    t[2] = kIgnoreIndex;
    t[3] = 5;
    auto got = gpu_run(dt, x, t, n, v, 1.0, 10.0);
    EXPECT_TRUE(std::isnan(got.loss[0]));
    EXPECT_TRUE(std::isnan(got.loss[1]));
    EXPECT_EQ(got.loss[2], 0.0);
    EXPECT_TRUE(std::isfinite(got.loss[3]) && got.loss[3] > 0);
    EXPECT_TRUE(std::isnan(got.mean[0]));
    for (int64_t j = 0; j < v; ++j) {
      ASSERT_TRUE(std::isnan(got.dlogits[size_t(j)])) << j;
      ASSERT_TRUE(std::isnan(got.dlogits[size_t(v + j)])) << j;
      ASSERT_EQ(got.dlogits[size_t(2 * v + j)], 0.0) << j;
      ASSERT_TRUE(std::isfinite(got.dlogits[size_t(3 * v + j)])) << j;
    }
  }
}

// A NaN logit anywhere in a row (head, packed body, tail; split or whole-row forward) must reach
// that row's loss, for the trainer's NaN guard; other rows stay finite.
TEST_P(CrossEntropyGpu, NaNLogitReachesLoss) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (int64_t n : {4, 300}) {
    const int64_t v = 50257;
    auto x = round_as(dt, rand_normal(size_t(n * v), 1.0, 121));
    x[size_t(0 * v + 1)] = NAN;
    x[size_t(1 * v + 30000)] = NAN;
    x[size_t(2 * v + v - 1)] = NAN;
    auto t = make_targets(n, v, 122);
    t[0] = 7;
    t[1] = 8;
    t[2] = 9;
    t[3] = 10;
    auto got = gpu_run(dt, x, t, n, v, 1.0, 4.0);
    for (int r = 0; r < 3; ++r) EXPECT_TRUE(std::isnan(got.loss[size_t(r)])) << "row " << r << " n=" << n;
    EXPECT_TRUE(std::isfinite(got.loss[3])) << "n=" << n;
  }
}

// Padded rows (vocab < row length; the LM head's padded vocabulary) against the CPU op in double
// on the same padded input: odd and prime V, strides that are and are not multiples of 64, few
// rows (split forward) and many. The padding holds huge values and a NaN, which a forward reading
// it would turn into a wrong or NaN loss; backward must write exact zeros over it (the buffers
// start poisoned), separately and in place.
TEST_P(CrossEntropyGpu, PaddedRowsMatchCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  Ctx& g = gpu_ctx();
  for (int64_t n : {1, 7, 293})
    for (auto [v, vp] : {std::pair<int64_t, int64_t>{3, 64}, {1031, 1088}, {4099, 4111}, {50257, 50304}}) {
      SCOPED_TRACE("N=" + std::to_string(n) + " V=" + std::to_string(v) + " Vp=" + std::to_string(vp));
      std::vector<double> x = round_as(dt, rand_normal(size_t(n * vp), 2.0, uint64_t(n * 13 + v)));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = v; j < vp; ++j) x[size_t(i * vp + j)] = j == vp - 1 ? NAN : 1e4;
      auto t = make_targets(n, v, uint64_t(n + v + 1));
      if (n == 1) t[0] = int32_t(v - 1);
      const double count = double(count_valid_targets(t.data(), n)) + 2, dloss = 0.8;

      Buffer cl = make_tensor(Device::cpu, DType::f64, {n, vp}, x), ct = make_ids(Device::cpu, {n}, t);
      Buffer closs(Device::cpu, DType::f64, {n}), clse(Device::cpu, DType::f64, {n});
      Buffer cd = make_poisoned(Device::cpu, DType::f64, {n, vp});
      CrossEntropyArgs cf{cl.t(), ct.t(), closs.t(), clse.t()};
      cf.vocab = v;
      cross_entropy_forward(c, cf);
      CrossEntropyBackwardArgs cb{cl.t(), ct.t(), clse.t(), cd.t(), dloss, count};
      cb.vocab = v;
      cross_entropy_backward(c, cb);

      Buffer gl = make_tensor(Device::cuda, dt, {n, vp}, x), gt = make_ids(Device::cuda, {n}, t);
      Buffer gloss = make_poisoned(Device::cuda, DType::f32, {n}), glse = make_poisoned(Device::cuda, DType::f32, {n});
      Buffer gd = make_poisoned(Device::cuda, dt, {n, vp});
      CrossEntropyArgs gf{gl.t(), gt.t(), gloss.t(), glse.t()};
      gf.vocab = v;
      cross_entropy_forward(g, gf);
      CrossEntropyBackwardArgs gb{gl.t(), gt.t(), glse.t(), gd.t(), dloss, count};
      gb.vocab = v;
      cross_entropy_backward(g, gb);

      EXPECT_LT(rel_err(to_host_f64(g, gloss.t()), to_host_f64(c, closs.t())), 1e-5);
      EXPECT_LT(rel_err(to_host_f64(g, glse.t()), to_host_f64(c, clse.t())), 1e-6);
      const auto got = to_host_f64(g, gd.t()), want = to_host_f64(c, cd.t());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = v; j < vp; ++j) ASSERT_EQ(got[size_t(i * vp + j)], 0.0) << "row " << i << " column " << j;
      EXPECT_LT(rel_err(got, want), gpu_tol(dt));
      gb.dlogits = gl.t();
      cross_entropy_backward(g, gb);
      const auto in_place = to_host_f64(g, gl.t());
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(in_place[i], got[i]) << "in-place differs at " << i;
    }
}

TEST(CrossEntropyMeanGpu, AccumulatesOnDevice) {
  ATTNLAB_REQUIRE_GPU();
  const int64_t n = 5003;
  auto l = round_as(DType::f32, rand_uniform(size_t(n), 0.1, 11.0, 111));
  double sum = 0;
  for (double x : l) sum += x;
  Buffer loss = make_tensor(Device::cuda, DType::f32, {n}, l);
  Buffer out = make_poisoned(Device::cuda, DType::f32, {1});
  cross_entropy_mean(gpu_ctx(), {loss.t(), out.t(), 4000.0, false});
  cross_entropy_mean(gpu_ctx(), {loss.t(), out.t(), 9000.0, true});
  EXPECT_NEAR(to_host_f64(gpu_ctx(), out.t())[0], sum / 4000 + sum / 9000, 1e-6 * (sum / 4000));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CrossEntropyGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace
}  // namespace attnlab::test
