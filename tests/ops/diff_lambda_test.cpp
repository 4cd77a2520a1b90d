#include "core/ops/diff_lambda.h"

#include <cmath>

#include "support/testing.h"

namespace attnlab::test {
namespace {

// The λ parameters of one case: the four [d] vectors (paper) or λ' [H] (seed).
struct Case {
  DiffLambdaPreset preset;
  int64_t n;                     // d (paper) or H (seed)
  std::vector<double> v[4];      // paper: λq1, λk1, λq2, λk2
  std::vector<double> raw;       // seed: λ'
  std::vector<double> dlambda;   // [1] or [H]
  std::vector<double> grad0[4];  // gradients already there (backward adds to them)
  std::vector<double> draw0;
  double lambda_init = 0;
  int64_t lambda_len() const { return preset == DiffLambdaPreset::paper ? 1 : n; }
};

Case make_case(DiffLambdaPreset preset, int64_t n, uint64_t seed) {
  Case c{preset, n};
  if (preset == DiffLambdaPreset::paper) {
    // Larger than the N(0, 0.1²) init, so exp(·) is far from 1 and both terms matter.
    for (int i = 0; i < 4; ++i) {
      c.v[i] = rand_uniform(size_t(n), -0.6, 0.6, seed + uint64_t(i));
      c.grad0[i] = rand_uniform(size_t(n), -1, 1, seed + 10 + uint64_t(i));
    }
    c.lambda_init = 0.8 - 0.6 * std::exp(-0.3 * 2);  // METHODS §3.2, layer 2
  } else {
    c.raw = rand_normal(size_t(n), 1.0, seed);
    c.draw0 = rand_uniform(size_t(n), -1, 1, seed + 10);
  }
  c.dlambda = rand_uniform(size_t(c.lambda_len()), -2, 2, seed + 20);
  return c;
}

// The layer's former host evaluation (core/layers/differential_attention.cpp), written out here.
std::vector<double> host_lambda(const Case& c) {
  if (c.preset == DiffLambdaPreset::paper) {
    double d1 = 0, d2 = 0;
    for (int64_t j = 0; j < c.n; ++j) {
      d1 += c.v[0][size_t(j)] * c.v[1][size_t(j)];
      d2 += c.v[2][size_t(j)] * c.v[3][size_t(j)];
    }
    return {std::exp(d1) - std::exp(d2) + c.lambda_init};
  }
  std::vector<double> l(c.raw.size());
  for (size_t h = 0; h < l.size(); ++h) l[h] = std::exp(c.raw[h]) + 0.05;
  return l;
}

// The parameters as tensors of `dt`, the accumulation tensors in acc_dtype(dt).
struct Tensors {
  Buffer v[4], raw, lambda, dlambda, grad[4], draw;
};
Tensors make(const Case& c, DType dt, bool with_grads = true) {
  Tensors t;
  const DType acc = acc_dtype(dt);
  if (c.preset == DiffLambdaPreset::paper) {
    for (int i = 0; i < 4; ++i) {
      t.v[i] = make_tensor(Device::cpu, dt, {c.n}, c.v[i]);
      if (with_grads) t.grad[i] = make_tensor(Device::cpu, acc, {c.n}, c.grad0[i]);
    }
  } else {
    t.raw = make_tensor(Device::cpu, dt, {c.n}, c.raw);
    if (with_grads) t.draw = make_tensor(Device::cpu, acc, {c.n}, c.draw0);
  }
  t.lambda = make_poisoned(Device::cpu, acc, {c.lambda_len()});
  t.dlambda = make_tensor(Device::cpu, acc, {c.lambda_len()}, c.dlambda);
  return t;
}

DiffLambdaArgs fwd_args(const Case& c, const Tensors& t) {
  return {.lambda = t.lambda.t(), .preset = c.preset, .q1 = t.v[0].t(), .k1 = t.v[1].t(), .q2 = t.v[2].t(),
          .k2 = t.v[3].t(), .raw = t.raw.t(), .lambda_init = c.lambda_init};
}
DiffLambdaBackwardArgs bwd_args(const Case& c, const Tensors& t) {
  return {.dq1 = t.grad[0].t(), .dk1 = t.grad[1].t(), .dq2 = t.grad[2].t(), .dk2 = t.grad[3].t(),
          .draw = t.draw.t(), .dlambda = t.dlambda.t(), .preset = c.preset, .q1 = t.v[0].t(), .k1 = t.v[1].t(),
          .q2 = t.v[2].t(), .k2 = t.v[3].t(), .raw = t.raw.t()};
}

std::vector<double> lambda_of(const Case& c, DType dt) {
  Tensors t = make(c, dt);
  diff_lambda_forward(cpu_ctx(), fwd_args(c, t));
  return to_host_f64(cpu_ctx(), t.lambda.t());
}

// What backward added to each gradient (paper: q1, k1, q2, k2 concatenated; seed: λ').
std::vector<double> grad_delta(const Case& c, DType dt) {
  Tensors t = make(c, dt);
  diff_lambda_backward(cpu_ctx(), bwd_args(c, t));
  std::vector<double> out;
  if (c.preset == DiffLambdaPreset::paper) {
    for (int i = 0; i < 4; ++i) {
      auto g = to_host_f64(cpu_ctx(), t.grad[i].t());
      for (size_t j = 0; j < g.size(); ++j) out.push_back(g[j] - c.grad0[i][j]);
    }
  } else {
    auto g = to_host_f64(cpu_ctx(), t.draw.t());
    for (size_t h = 0; h < g.size(); ++h) out.push_back(g[h] - c.draw0[h]);
  }
  return out;
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

}  // namespace

TEST(DiffLambda, PaperMatchesHostFormula) {
  for (int64_t d : {1, 37, 131}) {
    Case c = make_case(DiffLambdaPreset::paper, d, uint64_t(d));
    const double want = host_lambda(c)[0];
    ASSERT_GT(std::abs(want - c.lambda_init), 1e-3) << "the exp terms must not cancel";
    EXPECT_LT(rel(lambda_of(c, DType::f64)[0], want), 1e-15) << d;
    // f32: parameters rounded to f32 first, then the same double evaluation, rounded once.
    Case cf = c;
    for (auto& v : cf.v) v = round_as(DType::f32, v);
    EXPECT_EQ(lambda_of(c, DType::f32)[0], double(float(host_lambda(cf)[0]))) << d;
  }
}

TEST(DiffLambda, SeedMatchesHostFormula) {
  Case c = make_case(DiffLambdaPreset::seed, 7, 5);
  const auto want = host_lambda(c);
  const auto got = lambda_of(c, DType::f64);
  for (size_t h = 0; h < want.size(); ++h) EXPECT_LT(rel(got[h], want[h]), 1e-15) << h;
  Case cf = c;
  cf.raw = round_as(DType::f32, c.raw);
  const auto want_f = host_lambda(cf);
  const auto got_f = lambda_of(c, DType::f32);
  for (size_t h = 0; h < want.size(); ++h) EXPECT_EQ(got_f[h], double(float(want_f[h]))) << h;
}

// Loss Σ_h dλ_h·λ_h; backward's additions must be its gradient.
TEST(DiffLambda, BackwardMatchesFiniteDifferences) {
  double worst = 0;
  for (DiffLambdaPreset preset : {DiffLambdaPreset::paper, DiffLambdaPreset::seed})
    for (int64_t n : {1, 13, 41}) {
      Case c = make_case(preset, n, uint64_t(100 + n));
      const std::vector<double> ana = grad_delta(c, DType::f64);
      auto loss = [&] {
        const auto l = lambda_of(c, DType::f64);
        double s = 0;
        for (size_t i = 0; i < l.size(); ++i) s += c.dlambda[i] * l[i];
        return s;
      };
      std::vector<GradInput> in;
      std::vector<double> parts[4];
      if (preset == DiffLambdaPreset::paper) {
        const char* names[4] = {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"};
        for (int i = 0; i < 4; ++i) {
          parts[i].assign(ana.begin() + long(i * n), ana.begin() + long((i + 1) * n));
          in.push_back({names[i], c.v[i].data(), c.v[i].size(), &parts[i]});
        }
      } else {
        parts[0] = ana;
        in.push_back({"lambda_raw", c.raw.data(), c.raw.size(), &parts[0]});
      }
      std::string report;
      const double err = fd_check(loss, in, 1e-6, 64, &report);
      EXPECT_LT(err, 1e-8) << (preset == DiffLambdaPreset::paper ? "paper " : "seed ") << n << "\n" << report;
      worst = std::max(worst, err);
    }
  record_fd_error("diff_lambda", worst);
}

TEST(DiffLambda, FloatMatchesDouble) {
  for (DiffLambdaPreset preset : {DiffLambdaPreset::paper, DiffLambdaPreset::seed}) {
    Case c = make_case(preset, 29, 77);
    EXPECT_LT(rel_err(lambda_of(c, DType::f32), lambda_of(c, DType::f64)), 1e-6);
    EXPECT_LT(rel_err(grad_delta(c, DType::f32), grad_delta(c, DType::f64)), 1e-6);
  }
}

// A frozen parameter (undefined gradient) is skipped; the others get the same additions.
TEST(DiffLambda, FrozenGradientIsSkipped) {
  Case c = make_case(DiffLambdaPreset::paper, 11, 3);
  const auto full = grad_delta(c, DType::f64);
  Tensors t = make(c, DType::f64);
  DiffLambdaBackwardArgs a = bwd_args(c, t);
  a.dk2 = Tensor();
  diff_lambda_backward(cpu_ctx(), a);
  for (int i = 0; i < 3; ++i) {
    auto g = to_host_f64(cpu_ctx(), t.grad[i].t());
    for (size_t j = 0; j < g.size(); ++j) EXPECT_EQ(g[j] - c.grad0[i][j], full[size_t(i) * 11 + j]) << i << " " << j;
  }
  EXPECT_EQ(to_host_f64(cpu_ctx(), t.grad[3].t()), c.grad0[3]);
}

TEST(DiffLambda, RejectsBadInputs) {
  Case c = make_case(DiffLambdaPreset::paper, 5, 9);
  Tensors t = make(c, DType::f64);
  DiffLambdaArgs a = fwd_args(c, t);
  Buffer l32 = make_poisoned(Device::cpu, DType::f32, {1}), l2 = make_poisoned(Device::cpu, DType::f64, {2});
  Buffer short_k = make_tensor(Device::cpu, DType::f64, {4}, rand_uniform(4, -1, 1, 1));
  a.lambda = l32.t();  // f64 parameters accumulate in f64
  EXPECT_THROW(diff_lambda_forward(cpu_ctx(), a), Error);
  a.lambda = l2.t();  // the paper λ is one value
  EXPECT_THROW(diff_lambda_forward(cpu_ctx(), a), Error);
  a = fwd_args(c, t);
  a.k2 = short_k.t();
  EXPECT_THROW(diff_lambda_forward(cpu_ctx(), a), Error);
  a = fwd_args(c, t);
  a.raw = t.v[0].t();  // both presets' parameters
  EXPECT_THROW(diff_lambda_forward(cpu_ctx(), a), Error);
  DiffLambdaBackwardArgs b = bwd_args(c, t);
  b.draw = t.grad[0].t();
  EXPECT_THROW(diff_lambda_backward(cpu_ctx(), b), Error);
}

}  // namespace attnlab::test
