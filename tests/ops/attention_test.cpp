// CPU tests of the materialized attention: forward against a naive reference written from the
// definitions, finite-difference gradients in double for every variant and every input with a
// gradient, and input validation. Property tests are in attention_props_test.cpp.
#include <tuple>

#include "tests/ops/attention_test_util.h"

namespace attnlab::test {
namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

enum class Variant { standard, diff_layer, diff_head };
const char* variant_name(Variant v) {
  return v == Variant::standard ? "standard" : v == Variant::diff_layer ? "diffLayer" : "diffHead";
}

// GQA (4 query heads on 2 kv heads), a KV cache larger than S, query offset 2, causal, and one
// sequence with key padding: every mask path is crossed by every variant.
AttnProblem make_problem(AttnNorm norm, Variant var, bool controllers, uint64_t seed) {
  AttnProblem p;
  p.spec.Hq = 4, p.spec.Hkv = 2, p.spec.d = 3, p.spec.dv = 4;
  p.spec.norm = norm;
  p.spec.ramp_alpha = 0.3;
  p.spec.causal = true;
  p.spec.differential = var != Variant::standard;
  p.nlambda = var == Variant::diff_head ? p.spec.Hq : 1;
  p.B = 2, p.T = 5, p.S = 7, p.S_cap = 9;
  p.key_len = {7, 4};
  p.add = p.mul = controllers;
  p.randomize(seed, 1.5);
  return p;
}

// Gradient inputs of a problem: every tensor that has a gradient. The additive controller has a
// mathematically zero gradient for every normalising map (it shifts x, max and min alike), so the
// FD check only covers it for relaxed_linear; attention_props_test checks the zero exactly.
double fd_error(AttnProblem& pr, std::string* report) {
  Ctx& c = cpu_ctx();
  AttnOutputs g = pr.run(c, DType::f64, true);
  auto loss = [&] { return dot(pr.run(c, DType::f64, false).o, pr.dout); };
  std::vector<GradInput> in = {{"q", pr.q.data(), pr.q.size(), &g.dq},
                               {"k", pr.k.data(), pr.k.size(), &g.dk},
                               {"v", pr.v.data(), pr.v.size(), &g.dv}};
  if (pr.spec.differential) {
    in.push_back({"q2", pr.q2.data(), pr.q2.size(), &g.dq2});
    in.push_back({"k2", pr.k2.data(), pr.k2.size(), &g.dk2});
    in.push_back({"lambda", pr.lam.data(), pr.lam.size(), &g.dlambda});
  }
  if (pr.mul) in.push_back({"tau", pr.smul.data(), pr.smul.size(), &g.dmul});
  if (pr.add && pr.spec.norm == AttnNorm::relaxed_linear)
    in.push_back({"a", pr.sadd.data(), pr.sadd.size(), &g.dadd});
  return fd_check(loss, in, 1e-6, 48, report);
}

using FdParam = std::tuple<AttnNorm, Variant, bool>;
class AttentionFd : public ::testing::TestWithParam<FdParam> {};

TEST_P(AttentionFd, ForwardMatchesNaiveAndGradientsMatchFiniteDifferences) {
  auto [norm, var, ctrl] = GetParam();
  AttnProblem pr = make_problem(norm, var, ctrl, 100 + int(norm) * 10 + int(var) * 3 + ctrl);
  AttnOutputs out = pr.run(cpu_ctx(), DType::f64, false);
  NaiveResult ref = naive_forward(pr);
  EXPECT_LT(rel_err(out.o, ref.o), 1e-12);
  if (pr.spec.differential) {
    std::vector<double> comb(out.p.size());
    const int64_t per_head = pr.T * pr.S;
    for (size_t i = 0; i < comb.size(); ++i)
      comb[i] = out.p[i] - pr.lam[size_t(pr.nlambda == 1 ? 0 : int64_t(i) / per_head % pr.spec.Hq)] * out.p2[i];
    EXPECT_LT(rel_err(comb, ref.p), 1e-12);
  } else {
    EXPECT_LT(rel_err(out.p, ref.p), 1e-12);
  }
  std::string report;
  double err = fd_error(pr, &report);
  record_fd_error("attention", err);
  EXPECT_LT(err, 1e-6) << report;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, AttentionFd,
    ::testing::Combine(::testing::Values(AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp,
                                         AttnNorm::relaxed_linear),
                       ::testing::Values(Variant::standard, Variant::diff_layer, Variant::diff_head),
                       ::testing::Bool()),
    [](const auto& i) {
      return std::string(attn_norm_name(std::get<0>(i.param))) + "_" + variant_name(std::get<1>(i.param)) +
             (std::get<2>(i.param) ? "_controllers" : "");
    });

// Non-causal multi-head attention without padding, KV cache = S, S ≠ T (cross-attention shape).
TEST(Attention, FiniteDifferenceNonCausalMha) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    AttnProblem pr;
    pr.spec.Hq = pr.spec.Hkv = 3, pr.spec.d = 4, pr.spec.causal = false, pr.spec.norm = norm;
    pr.spec.scale = 0.7;
    pr.spec.ramp_alpha = 0.6;
    pr.B = 1, pr.T = 4, pr.S = pr.S_cap = 6;
    pr.randomize(7 + int(norm), 1.2);
    AttnOutputs out = pr.run(cpu_ctx(), DType::f64, false);
    EXPECT_LT(rel_err(out.o, naive_forward(pr).o), 1e-12) << attn_norm_name(norm);
    std::string report;
    double err = fd_error(pr, &report);
    record_fd_error("attention", err);
    EXPECT_LT(err, 1e-6) << attn_norm_name(norm) << "\n" << report;
  }
}

// The f32 CPU path runs the same arithmetic in float: it must agree with f64 to float precision.
TEST(Attention, FloatPathMatchesDouble) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp}) {
    AttnProblem pr = make_problem(norm, Variant::diff_head, true, 55);
    pr.q = round_as(DType::f32, pr.q), pr.k = round_as(DType::f32, pr.k), pr.v = round_as(DType::f32, pr.v);
    pr.q2 = round_as(DType::f32, pr.q2), pr.k2 = round_as(DType::f32, pr.k2);
    pr.dout = round_as(DType::f32, pr.dout);
    AttnOutputs d = pr.run(cpu_ctx(), DType::f64, true), f = pr.run(cpu_ctx(), DType::f32, true);
    for (auto [name, x, y] : {std::tuple{"o", &f.o, &d.o}, {"p", &f.p, &d.p}, {"dq", &f.dq, &d.dq},
                              {"dk", &f.dk, &d.dk}, {"dv", &f.dv, &d.dv}, {"dq2", &f.dq2, &d.dq2},
                              {"dk2", &f.dk2, &d.dk2}, {"dlambda", &f.dlambda, &d.dlambda},
                              {"dtau", &f.dmul, &d.dmul}})
      EXPECT_LT(rel_err(*x, *y), 2e-5) << attn_norm_name(norm) << " " << name;
  }
}

TEST(Attention, RejectsBadInputs) {
  AttnProblem pr = make_problem(AttnNorm::softmax, Variant::standard, false, 3);
  Ctx& c = cpu_ctx();
  AttentionSpec bad = pr.spec;
  bad.Hkv = 3;  // 4 % 3 != 0
  Buffer q(Device::cpu, DType::f64, {2, 4, 5, 3}), k(Device::cpu, DType::f64, {2, 2, 9, 3});
  Buffer v(Device::cpu, DType::f64, {2, 2, 9, 4}), o(Device::cpu, DType::f64, {2, 4, 5, 4});
  Buffer p(Device::cpu, DType::f64, {2, 4, 5, 7}), lse(Device::cpu, DType::f64, {2, 4, 5});
  AttentionArgs a;
  a.spec = bad;
  a.q = q, a.k = k, a.v = v, a.out = o, a.probs = p, a.lse = lse;
  EXPECT_THROW(attention_forward(c, a), Error);
  a.spec = pr.spec;
  attention_forward(c, a);  // the valid configuration runs
  a.lse = Tensor{};         // softmax saves lse
  EXPECT_THROW(attention_forward(c, a), Error);
  a.lse = lse;
  Buffer p_wide(Device::cpu, DType::f64, {2, 4, 5, 10});  // S = 10 > S_cap = 9
  a.probs = p_wide;
  EXPECT_THROW(attention_forward(c, a), Error);
  a.probs = p;
  Buffer ent(Device::cpu, DType::f64, {2, 4, 5});
  a.spec.norm = AttnNorm::relaxed_linear;  // entropy needs a distribution
  a.captures.entropy = ent;
  EXPECT_THROW(attention_forward(c, a), Error);
  a.captures.entropy = Tensor{};
  a.spec.norm = AttnNorm::softmax;
  a.spec.differential = true;  // differential without q2/k2/lambda
  EXPECT_THROW(attention_forward(c, a), Error);
  a.spec.differential = false;
  Buffer qf(Device::cpu, DType::f32, {2, 4, 5, 3});  // mixed dtypes
  a.q = qf;
  EXPECT_THROW(attention_forward(c, a), Error);
  a.q = q;
  AttentionSpec diff = pr.spec;
  diff.differential = true;
  EXPECT_GT(attention_workspace_bytes(diff, 2, 5, 7, DType::f64, false, false), size_t(0));
  Buffer q2(Device::cpu, DType::f64, {2, 4, 5, 3}), k2(Device::cpu, DType::f64, {2, 2, 9, 3});
  Buffer p2(Device::cpu, DType::f64, {2, 4, 5, 7}), lam(Device::cpu, DType::f64, {1});
  Buffer lse2(Device::cpu, DType::f64, {2, 4, 5});
  a.spec = diff;
  a.q2 = q2, a.k2 = k2, a.probs2 = p2, a.lambda = lam, a.lse2 = lse2;
  EXPECT_THROW(attention_forward(c, a), Error);  // no workspace for the combined map
}

}  // namespace
}  // namespace attnlab::test
