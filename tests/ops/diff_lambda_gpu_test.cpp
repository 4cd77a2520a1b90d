#include "core/ops/diff_lambda.h"

#include <algorithm>
#include <cmath>

#include "support/testing.h"

namespace attnlab::test {
namespace {

struct Result {
  std::vector<double> lambda, grads;  // grads: the gradients after backward, concatenated
};

// Forward then backward on `dev`; parameters in `dt`, λ/dλ/gradients in acc_dtype(dt).
// Paper: params holds λq1, λk1, λq2, λk2 ([d] each) back to back; seed: λ' [H].
Result run(Device dev, DType dt, DiffLambdaPreset preset, int64_t n, const std::vector<double>& params,
           const std::vector<double>& grad0, const std::vector<double>& dlambda, double lambda_init) {
  Ctx& c = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  const DType acc = acc_dtype(dt);
  const bool paper = preset == DiffLambdaPreset::paper;
  const int64_t nl = paper ? 1 : n;
  Buffer v[4], g[4], raw, draw;
  if (paper) {
    for (int i = 0; i < 4; ++i) {
      v[i] = make_tensor(dev, dt, {n}, std::vector<double>(params.begin() + i * n, params.begin() + (i + 1) * n));
      g[i] = make_tensor(dev, acc, {n}, std::vector<double>(grad0.begin() + i * n, grad0.begin() + (i + 1) * n));
    }
  } else {
    raw = make_tensor(dev, dt, {n}, params);
    draw = make_tensor(dev, acc, {n}, grad0);
  }
  Buffer lambda = make_poisoned(dev, acc, {nl}), dl = make_tensor(dev, acc, {nl}, dlambda);
  diff_lambda_forward(c, {.lambda = lambda.t(), .preset = preset, .q1 = v[0].t(), .k1 = v[1].t(), .q2 = v[2].t(),
                          .k2 = v[3].t(), .raw = raw.t(), .lambda_init = lambda_init});
  diff_lambda_backward(c, {.dq1 = g[0].t(), .dk1 = g[1].t(), .dq2 = g[2].t(), .dk2 = g[3].t(), .draw = draw.t(),
                           .dlambda = dl.t(), .preset = preset, .q1 = v[0].t(), .k1 = v[1].t(), .q2 = v[2].t(),
                           .k2 = v[3].t(), .raw = raw.t()});
  Result r;
  r.lambda = to_host_f64(c, lambda.t());
  if (paper) {
    for (int i = 0; i < 4; ++i) {
      auto gi = to_host_f64(c, g[i].t());
      r.grads.insert(r.grads.end(), gi.begin(), gi.end());
    }
  } else {
    r.grads = to_host_f64(c, draw.t());
  }
  return r;
}

}  // namespace

class DiffLambdaGpu : public ::testing::TestWithParam<DType> {};

TEST_P(DiffLambdaGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const double lambda_init = 0.8 - 0.6 * std::exp(-0.3 * 3);
  for (DiffLambdaPreset preset : {DiffLambdaPreset::paper, DiffLambdaPreset::seed})
    for (int64_t n : {1, 7, 67, 257, 1031}) {
      const bool paper = preset == DiffLambdaPreset::paper;
      const size_t np = size_t(paper ? 4 * n : n);
      const uint64_t seed = uint64_t(n * 31 + (paper ? 0 : 1));
      // paper: entries of ±0.6/√(n/16) keep the dot products O(1) at every d.
      const double s = paper ? 0.6 / std::sqrt(std::max(1.0, double(n) / 16)) : 1.0;
      auto params = round_as(dt, paper ? rand_uniform(np, -s, s, seed) : rand_normal(np, 1.0, seed));
      auto grad0 = rand_uniform(np, -1, 1, seed + 1);
      auto dl = rand_uniform(size_t(paper ? 1 : n), -2, 2, seed + 2);
      Result got = run(Device::cuda, dt, preset, n, params, grad0, dl, lambda_init);
      Result ref = run(Device::cpu, DType::f64, preset, n, params, grad0, dl, lambda_init);
      const std::string what = std::string(paper ? "paper d=" : "seed H=") + std::to_string(n);
      // Parameters are rounded alike on both sides and the GPU accumulates in f32 for bf16 too.
      EXPECT_LT(rel_err(got.lambda, ref.lambda), gpu_tol(DType::f32)) << what;
      // Compare the additions, not the sums (grad0 would hide an error in them).
      std::vector<double> dgot(np), dref(np);
      for (size_t i = 0; i < np; ++i) dgot[i] = got.grads[i] - grad0[i], dref[i] = ref.grads[i] - grad0[i];
      EXPECT_LT(rel_err(dgot, dref), gpu_tol(DType::f32)) << what;
    }
}

// Fixed reduction order: the same inputs give the same bits run to run.
TEST_P(DiffLambdaGpu, Deterministic) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t d = 509;
  auto params = round_as(dt, rand_uniform(size_t(4 * d), -0.2, 0.2, 8));
  auto grad0 = rand_uniform(size_t(4 * d), -1, 1, 9);
  auto dl = rand_uniform(1, -2, 2, 10);
  Result a = run(Device::cuda, dt, DiffLambdaPreset::paper, d, params, grad0, dl, 0.5);
  Result b = run(Device::cuda, dt, DiffLambdaPreset::paper, d, params, grad0, dl, 0.5);
  EXPECT_EQ(a.lambda, b.lambda);
  EXPECT_EQ(a.grads, b.grads);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DiffLambdaGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace attnlab::test
