#pragma once
// Runs the tiled attention (core/ops/attention_tiled.h) on an AttnProblem with the same inputs,
// captures and poisoned outputs as AttnProblem::run does for the materialized op, and compares
// the two results field by field.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/ops/attention_tiled.h"
#include "tests/ops/attention_test_util.h"

namespace attnlab::test {

inline AttnOutputs run_tiled(const AttnProblem& pr, Ctx& ctx, DType dt, bool backward, AttentionTiles tiles,
                             const AttnCaptureReq* cap = nullptr) {
  const Device dev = ctx.device;
  const DType acc = acc_dtype(dt);
  const AttentionSpec& spec = pr.spec;
  const int64_t B = pr.B, T = pr.T, S = pr.S, Sc = pr.S_cap, Hq = spec.Hq, Hkv = spec.Hkv, d = spec.d, dv = pr.dv();
  const bool diff = spec.differential;
  const bool lin = spec.norm == AttnNorm::linear || spec.norm == AttnNorm::ramp;
  const bool sm = spec.norm == AttnNorm::softmax || spec.norm == AttnNorm::ramp;
  const int64_t np = attention_tiled_nparts(spec);
  auto mk = [&](DType t, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
    return make_tensor(dev, t, dims, v);
  };
  auto poison = [&](DType t, std::initializer_list<int64_t> dims) { return make_poisoned(dev, t, dims); };
  Buffer bq = mk(dt, {B, Hq, T, d}, pr.q), bk = mk(dt, {B, Hkv, Sc, d}, pr.k), bv = mk(dt, {B, Hkv, Sc, dv}, pr.v);
  Buffer bq2, bk2, blam, bkl, badd, bmul;
  if (diff) bq2 = mk(dt, {B, Hq, T, d}, pr.q2), bk2 = mk(dt, {B, Hkv, Sc, d}, pr.k2), blam = mk(acc, {pr.nlambda}, pr.lam);
  if (!pr.key_len.empty()) bkl = make_ids(dev, {B}, pr.key_len);
  if (pr.add) badd = mk(acc, {B, Hq, T}, pr.sadd);
  if (pr.mul) bmul = mk(acc, {B, Hq, T}, pr.smul);
  Buffer bo = poison(dt, {B, Hq, T, dv}), bparts, blse, brmin, brsum, blse2, brmin2, brsum2;
  if (np > 1) bparts = poison(dt, {B, Hq, T, np * dv});
  if (sm) blse = poison(acc, {B, Hq, T});
  if (lin) brmin = poison(DType::i32, {B, Hq, T}), brsum = poison(acc, {B, Hq, T});
  if (diff && sm) blse2 = poison(acc, {B, Hq, T});
  if (diff && lin) brmin2 = poison(DType::i32, {B, Hq, T}), brsum2 = poison(acc, {B, Hq, T});

  AttentionTiledArgs ta;
  AttentionArgs& a = ta.attn;
  ta.S = S, ta.tiles = tiles, ta.out_parts = bparts.t();
  a.spec = spec;
  a.q = bq.t(), a.k = bk.t(), a.v = bv.t(), a.q2 = bq2.t(), a.k2 = bk2.t(), a.lambda = blam.t();
  a.key_lengths = bkl.t(), a.query_offset = pr.offset, a.score_add = badd.t(), a.score_mul = bmul.t();
  a.out = bo.t(), a.lse = blse.t(), a.row_min = brmin.t(), a.row_sum = brsum.t();
  a.lse2 = blse2.t(), a.row_min2 = brmin2.t(), a.row_sum2 = brsum2.t();
  Buffer crows, cscores, cscores2, cprobs, cent, ckl, cvar, cspans, cmass;
  if (cap) {
    const int64_t nr = int64_t(cap->rows.size());
    if (nr > 0) {
      crows = make_ids(dev, {nr}, cap->rows);
      cscores = poison(acc, {B, Hq, nr, S}), cprobs = poison(acc, {B, Hq, nr, S});
      if (diff) cscores2 = poison(acc, {B, Hq, nr, S});
    }
    if (cap->entropy) cent = poison(acc, {B, Hq, T});
    if (cap->kl) ckl = poison(acc, {B, Hq, T});
    if (cap->variance) cvar = poison(acc, {B, Hq, T});
    if (!cap->spans.empty()) {
      const int64_t ns = int64_t(cap->spans.size() / 2);
      cspans = make_ids(dev, {ns, 2}, cap->spans), cmass = poison(acc, {B, Hq, T, ns});
    }
    a.captures = {crows.t(), cscores.t(), cscores2.t(), cprobs.t(), cent.t(), ckl.t(), cvar.t(), cspans.t(), cmass.t()};
  }
  attention_tiled_forward(ctx, ta);

  AttnOutputs r;
  auto get = [&](const Buffer& b) { return b.t().defined() ? to_host_f64(ctx, b.t()) : std::vector<double>{}; };
  r.o = get(bo), r.lse = get(blse), r.rmin = get(brmin), r.rsum = get(brsum);
  r.lse2 = get(blse2), r.rmin2 = get(brmin2), r.rsum2 = get(brsum2);
  r.cap_scores = get(cscores), r.cap_scores2 = get(cscores2), r.cap_probs = get(cprobs);
  r.entropy = get(cent), r.kl = get(ckl), r.variance = get(cvar), r.span_mass = get(cmass);
  if (!backward) return r;

  Buffer bdo = mk(dt, {B, Hq, T, dv}, pr.dout);
  Buffer bdq = poison(dt, {B, Hq, T, d}), bdk = poison(dt, {B, Hkv, Sc, d}), bdv = poison(dt, {B, Hkv, Sc, dv});
  Buffer bdq2, bdk2, bdl, bdadd, bdmul;
  if (diff) bdq2 = poison(dt, {B, Hq, T, d}), bdk2 = poison(dt, {B, Hkv, Sc, d}), bdl = poison(acc, {pr.nlambda});
  if (pr.add) bdadd = poison(acc, {B, Hq, T});
  if (pr.mul) bdmul = poison(acc, {B, Hq, T});
  const size_t ws = attention_tiled_workspace_bytes(spec, B, T, dt);
  Buffer bws = poison(DType::f32, {int64_t(ws / 4 + 1)});
  AttentionTiledBackwardArgs tb;
  AttentionBackwardArgs& g = tb.attn;
  tb.S = S, tb.tiles = tiles, tb.out = np == 1 ? a.out : Tensor{}, tb.out_parts = ta.out_parts;
  g.spec = spec;
  g.q = a.q, g.k = a.k, g.v = a.v, g.q2 = a.q2, g.k2 = a.k2, g.lambda = a.lambda, g.key_lengths = a.key_lengths;
  g.query_offset = pr.offset, g.score_add = a.score_add, g.score_mul = a.score_mul;
  g.lse = a.lse, g.row_min = a.row_min, g.row_sum = a.row_sum;
  g.lse2 = a.lse2, g.row_min2 = a.row_min2, g.row_sum2 = a.row_sum2;
  g.dout = bdo.t(), g.dq = bdq.t(), g.dk = bdk.t(), g.dv = bdv.t();
  g.dq2 = bdq2.t(), g.dk2 = bdk2.t(), g.dlambda = bdl.t(), g.dscore_add = bdadd.t(), g.dscore_mul = bdmul.t();
  g.workspace = bws.t();
  attention_tiled_backward(ctx, tb);
  r.dq = get(bdq), r.dk = get(bdk), r.dv = get(bdv), r.dq2 = get(bdq2), r.dk2 = get(bdk2);
  r.dlambda = get(bdl), r.dadd = get(bdadd), r.dmul = get(bdmul);
  return r;
}

// Relative error of a against the reference b. A reference that is rounding noise around zero
// (softmax KL without a multiplicative controller, da of a normalising map: exactly 0 in exact
// arithmetic) has no meaningful relative error; both must then be within `abs_tol` of it.
inline ::testing::AssertionResult close_to(const std::vector<double>& a, const std::vector<double>& b, double tol,
                                           double abs_tol = 1e-13) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " vs " << b.size();
  double nb = 0, ninf = 0;
  for (double x : b) nb += x * x, ninf = std::max(ninf, std::fabs(x));
  if (std::sqrt(nb) > 1e-9) {
    const double e = rel_err(a, b);
    if (e <= tol) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "relative error " << e << " > " << tol;
  }
  const double e = max_abs_diff(a, b);
  if (e <= abs_tol && std::isfinite(e)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "reference is ~0 (max " << ninf << "); max abs diff " << e << " > "
                                       << abs_tol;
}

// Every output the tiled path produces, against the materialized op's.
inline void expect_same_outputs(const AttnOutputs& t, const AttnOutputs& m, double tol, const std::string& what) {
  const std::pair<const char*, std::pair<const std::vector<double>*, const std::vector<double>*>> fields[] = {
      {"o", {&t.o, &m.o}},
      {"lse", {&t.lse, &m.lse}},
      {"row_min", {&t.rmin, &m.rmin}},
      {"row_sum", {&t.rsum, &m.rsum}},
      {"lse2", {&t.lse2, &m.lse2}},
      {"row_min2", {&t.rmin2, &m.rmin2}},
      {"row_sum2", {&t.rsum2, &m.rsum2}},
      {"cap_scores", {&t.cap_scores, &m.cap_scores}},
      {"cap_scores2", {&t.cap_scores2, &m.cap_scores2}},
      {"cap_probs", {&t.cap_probs, &m.cap_probs}},
      {"entropy", {&t.entropy, &m.entropy}},
      {"kl", {&t.kl, &m.kl}},
      {"variance", {&t.variance, &m.variance}},
      {"span_mass", {&t.span_mass, &m.span_mass}},
      {"dq", {&t.dq, &m.dq}},
      {"dk", {&t.dk, &m.dk}},
      {"dv", {&t.dv, &m.dv}},
      {"dq2", {&t.dq2, &m.dq2}},
      {"dk2", {&t.dk2, &m.dk2}},
      {"dlambda", {&t.dlambda, &m.dlambda}},
      {"dscore_add", {&t.dadd, &m.dadd}},
      {"dscore_mul", {&t.dmul, &m.dmul}},
  };
  for (const auto& [name, pair] : fields) {
    if (std::string(name).rfind("row_min", 0) == 0) {
      EXPECT_EQ(*pair.first, *pair.second) << what << " " << name;  // indices: exactly
      continue;
    }
    if (std::string(name).rfind("cap_", 0) == 0 && pair.first->size() == pair.second->size()) {
      // Slots of out-of-range capture rows stay poisoned (NaN) in both; compare the rest.
      std::vector<double> a, b;
      for (size_t i = 0; i < pair.second->size(); ++i) {
        const bool untouched = std::isnan((*pair.second)[i]);
        EXPECT_EQ(std::isnan((*pair.first)[i]), untouched) << what << " " << name << " element " << i;
        if (!untouched) a.push_back((*pair.first)[i]), b.push_back((*pair.second)[i]);
      }
      EXPECT_TRUE(close_to(a, b, tol, tol * 0.1)) << what << " " << name;
      continue;
    }
    EXPECT_TRUE(close_to(*pair.first, *pair.second, tol, tol * 0.1)) << what << " " << name;
  }
}

}  // namespace attnlab::test
