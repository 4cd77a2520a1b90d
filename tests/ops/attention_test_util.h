#pragma once
// Helpers shared by the attention tests (CPU and GPU): a problem description with host data, a
// runner that calls attention_forward/backward on any device and dtype and reads every output
// back, and a naive reference forward written from the definitions (no shared code with the op).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/ops/attention.h"
#include "support/testing.h"

namespace attnlab::test {

struct AttnCaptureReq {
  std::vector<int32_t> rows;                 // query rows for score/probability captures
  std::vector<int32_t> spans;                // flattened [begin, end) pairs
  bool entropy = false, kl = false, variance = false;
};

struct AttnOutputs {
  std::vector<double> o, p, p2, lse, rmin, rsum, lse2, rmin2, rsum2;
  std::vector<double> cap_scores, cap_scores2, cap_probs, entropy, kl, variance, span_mass;
  std::vector<double> dq, dk, dv, dq2, dk2, dlambda, dadd, dmul;
};

struct AttnProblem {
  AttentionSpec spec;
  int64_t B = 1, T = 1, S = 1, S_cap = 1;
  int64_t offset = -1;
  std::vector<int32_t> key_len;  // empty: no key padding
  bool add = false, mul = false;
  int64_t nlambda = 1;           // differential: 1 or Hq
  uint64_t dropout_offset = 0;   // spec.dropout > 0: the Philox counters of the mask
  std::vector<double> q, k, v, q2, k2, lam, sadd, smul, dout;
  // Optional: the backward uses these row-min indices instead of the forward's (GPU tests in
  // bf16 feed the GPU's choice of argmin to the CPU reference so near-ties pick the same key).
  std::vector<double> override_rmin, override_rmin2;

  int64_t dv() const { return spec.value_dim(); }
  size_t nq() const { return size_t(B * spec.Hq * T * spec.d); }
  size_t nk() const { return size_t(B * spec.Hkv * S_cap * spec.d); }
  size_t nv() const { return size_t(B * spec.Hkv * S_cap * dv()); }
  size_t no() const { return size_t(B * spec.Hq * T * dv()); }
  size_t nrow() const { return size_t(B * spec.Hq * T); }
  size_t nmap() const { return nrow() * size_t(S); }

  // Fills every input with fresh random values (never zeros).
  void randomize(uint64_t seed, double qk_range = 1.0) {
    q = rand_uniform(nq(), -qk_range, qk_range, seed + 1);
    k = rand_uniform(nk(), -qk_range, qk_range, seed + 2);
    v = rand_uniform(nv(), -1, 1, seed + 3);
    dout = rand_uniform(no(), -1, 1, seed + 4);
    if (spec.differential) {
      q2 = rand_uniform(nq(), -qk_range, qk_range, seed + 5);
      k2 = rand_uniform(nk(), -qk_range, qk_range, seed + 6);
      lam = rand_uniform(size_t(nlambda), 0.2, 0.8, seed + 7);
    }
    if (add) sadd = rand_uniform(nrow(), -0.7, 0.7, seed + 8);
    if (mul) smul = rand_uniform(nrow(), 0.6, 1.6, seed + 9);
  }

  int64_t resolved_offset() const { return offset < 0 ? S - T : offset; }
  int64_t visible(int64_t b, int64_t t) const {
    int64_t n = S;
    if (!key_len.empty()) n = std::min<int64_t>(n, key_len[size_t(b)]);
    if (spec.causal) n = std::min(n, t + resolved_offset() + 1);
    return std::max<int64_t>(n, 0);
  }

  AttnOutputs run(Ctx& ctx, DType dt, bool backward, const AttnCaptureReq* cap = nullptr) const;
};

inline AttnOutputs AttnProblem::run(Ctx& ctx, DType dt, bool backward, const AttnCaptureReq* cap) const {
  const Device dev = ctx.device;
  const DType acc = acc_dtype(dt);
  const int64_t Hq = spec.Hq, Hkv = spec.Hkv, d = spec.d, dvv = dv();
  const bool diff = spec.differential;
  const bool lin = spec.norm == AttnNorm::linear || spec.norm == AttnNorm::ramp;
  const bool sm = spec.norm == AttnNorm::softmax || spec.norm == AttnNorm::ramp;
  auto mk = [&](DType t, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
    return make_tensor(dev, t, dims, v);
  };
  auto poison = [&](DType t, std::initializer_list<int64_t> dims) { return make_poisoned(dev, t, dims); };
  Buffer bq = mk(dt, {B, Hq, T, d}, q), bk = mk(dt, {B, Hkv, S_cap, d}, k), bv = mk(dt, {B, Hkv, S_cap, dvv}, v);
  Buffer bq2, bk2, blam, bkl, badd, bmul;
  if (diff) {
    bq2 = mk(dt, {B, Hq, T, d}, q2);
    bk2 = mk(dt, {B, Hkv, S_cap, d}, k2);
    blam = mk(acc, {nlambda}, lam);
  }
  if (!key_len.empty()) bkl = make_ids(dev, {B}, key_len);
  if (add) badd = mk(acc, {B, Hq, T}, sadd);
  if (mul) bmul = mk(acc, {B, Hq, T}, smul);
  Buffer bo = poison(dt, {B, Hq, T, dvv}), bp = poison(dt, {B, Hq, T, S}), bp2;
  Buffer blse, brmin, brsum, blse2, brmin2, brsum2;
  if (diff) bp2 = poison(dt, {B, Hq, T, S});
  if (sm) blse = poison(acc, {B, Hq, T});
  if (lin) brmin = poison(DType::i32, {B, Hq, T}), brsum = poison(acc, {B, Hq, T});
  if (diff && sm) blse2 = poison(acc, {B, Hq, T});
  if (diff && lin) brmin2 = poison(DType::i32, {B, Hq, T}), brsum2 = poison(acc, {B, Hq, T});

  AttentionArgs a;
  a.spec = spec;
  a.q = bq.t(), a.k = bk.t(), a.v = bv.t(), a.q2 = bq2.t(), a.k2 = bk2.t(), a.lambda = blam.t();
  a.key_lengths = bkl.t();
  a.keys = S;
  a.query_offset = offset;
  a.score_add = badd.t(), a.score_mul = bmul.t();
  a.dropout_offset = dropout_offset;
  a.out = bo.t(), a.probs = bp.t(), a.probs2 = bp2.t();
  a.lse = blse.t(), a.row_min = brmin.t(), a.row_sum = brsum.t();
  a.lse2 = blse2.t(), a.row_min2 = brmin2.t(), a.row_sum2 = brsum2.t();
  const size_t ws_f = attention_workspace_bytes(spec, B, T, S, dt, false, mul);
  const size_t ws_b = attention_workspace_bytes(spec, B, T, S, dt, true, mul);
  Buffer bws = poison(DType::f32, {int64_t(std::max<size_t>({ws_f, ws_b, 4}) / 4 + 1)});
  a.workspace = bws.t();

  Buffer crows, cscores, cscores2, cprobs, cent, ckl, cvar, cspans, cmass;
  if (cap) {
    const int64_t nr = int64_t(cap->rows.size());
    if (nr > 0) {
      crows = make_ids(dev, {nr}, cap->rows);
      cscores = poison(acc, {B, Hq, nr, S});
      cprobs = poison(acc, {B, Hq, nr, S});
      if (diff) cscores2 = poison(acc, {B, Hq, nr, S});
    }
    if (cap->entropy) cent = poison(acc, {B, Hq, T});
    if (cap->kl) ckl = poison(acc, {B, Hq, T});
    if (cap->variance) cvar = poison(acc, {B, Hq, T});
    if (!cap->spans.empty()) {
      const int64_t ns = int64_t(cap->spans.size() / 2);
      cspans = make_ids(dev, {ns, 2}, cap->spans);
      cmass = poison(acc, {B, Hq, T, ns});
    }
    a.captures = {crows.t(), cscores.t(), cscores2.t(), cprobs.t(), cent.t(), ckl.t(), cvar.t(),
                  cspans.t(), cmass.t()};
  }
  attention_forward(ctx, a);

  AttnOutputs r;
  auto get = [&](const Buffer& b) { return b.t().defined() ? to_host_f64(ctx, b.t()) : std::vector<double>{}; };
  r.o = get(bo), r.p = get(bp), r.p2 = get(bp2);
  r.lse = get(blse), r.rmin = get(brmin), r.rsum = get(brsum);
  r.lse2 = get(blse2), r.rmin2 = get(brmin2), r.rsum2 = get(brsum2);
  r.cap_scores = get(cscores), r.cap_scores2 = get(cscores2), r.cap_probs = get(cprobs);
  r.entropy = get(cent), r.kl = get(ckl), r.variance = get(cvar), r.span_mass = get(cmass);
  if (!backward) return r;

  if (!override_rmin.empty()) from_host_f64(ctx, brmin.t(), override_rmin);
  if (!override_rmin2.empty()) from_host_f64(ctx, brmin2.t(), override_rmin2);
  Buffer bdo = mk(dt, {B, Hq, T, dvv}, dout);
  Buffer bdq = poison(dt, {B, Hq, T, d}), bdk = poison(dt, {B, Hkv, S_cap, d}), bdv = poison(dt, {B, Hkv, S_cap, dvv});
  Buffer bdq2, bdk2, bdl, bdadd, bdmul;
  if (diff) bdq2 = poison(dt, {B, Hq, T, d}), bdk2 = poison(dt, {B, Hkv, S_cap, d}), bdl = poison(acc, {nlambda});
  if (add) bdadd = poison(acc, {B, Hq, T});
  if (mul) bdmul = poison(acc, {B, Hq, T});
  poison_tensor(ctx, bws.t());
  AttentionBackwardArgs g;
  g.spec = spec;
  g.q = a.q, g.k = a.k, g.v = a.v, g.q2 = a.q2, g.k2 = a.k2, g.lambda = a.lambda, g.key_lengths = a.key_lengths;
  g.keys = S;
  g.query_offset = offset;
  g.score_add = a.score_add, g.score_mul = a.score_mul;
  g.dropout_offset = dropout_offset;
  g.probs = a.probs, g.probs2 = a.probs2;
  g.lse = a.lse, g.row_min = a.row_min, g.row_sum = a.row_sum;
  g.lse2 = a.lse2, g.row_min2 = a.row_min2, g.row_sum2 = a.row_sum2;
  g.dout = bdo.t(), g.dq = bdq.t(), g.dk = bdk.t(), g.dv = bdv.t();
  g.dq2 = bdq2.t(), g.dk2 = bdk2.t(), g.dlambda = bdl.t(), g.dscore_add = bdadd.t(), g.dscore_mul = bdmul.t();
  g.workspace = bws.t();
  attention_backward(ctx, g);
  r.dq = get(bdq), r.dk = get(bdk), r.dv = get(bdv), r.dq2 = get(bdq2), r.dk2 = get(bdk2);
  r.dlambda = get(bdl), r.dadd = get(bdadd), r.dmul = get(bdmul);
  return r;
}

// Naive forward from the definitions (METHODS P6, §2.2, §3.2, §4.3–4.5), in double: returns O and
// the final map P (A1 − λA2 for differential). Written independently of attention_math.h.
struct NaiveResult {
  std::vector<double> o, p;
};
inline std::vector<double> naive_map(const AttnProblem& pr, const std::vector<double>& q,
                                     const std::vector<double>& k) {
  const auto& s = pr.spec;
  const int64_t G = s.Hq / s.Hkv;
  const double scale = s.score_scale();
  std::vector<double> p(pr.nmap(), 0.0);
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h)
      for (int64_t t = 0; t < pr.T; ++t) {
        const size_t r = size_t((b * s.Hq + h) * pr.T + t);
        const int64_t n = pr.visible(b, t);
        if (n == 0) continue;
        std::vector<double> x(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < s.d; ++e)
            dot += q[size_t(((b * s.Hq + h) * pr.T + t) * s.d + e)] *
                   k[size_t(((b * s.Hkv + h / G) * pr.S_cap + j) * s.d + e)];
          x[size_t(j)] = dot * scale * (pr.mul ? pr.smul[r] : 1.0) + (pr.add ? pr.sadd[r] : 0.0);
        }
        const double mx = *std::max_element(x.begin(), x.end());
        const double mn = *std::min_element(x.begin(), x.end());
        double se = 0, z = 0;
        for (double xi : x) se += std::exp(xi - mx), z += xi - mn + 1;
        for (int64_t j = 0; j < n; ++j) {
          const double xs = std::exp(x[size_t(j)] - mx) / se, xl = (x[size_t(j)] - mn + 1) / z;
          double v = 0;
          switch (s.norm) {
            case AttnNorm::softmax: v = xs; break;
            case AttnNorm::linear: v = xl; break;
            case AttnNorm::ramp: v = s.ramp_alpha * xl + (1 - s.ramp_alpha) * xs; break;
            case AttnNorm::relaxed_linear: v = x[size_t(j)]; break;
          }
          p[r * size_t(pr.S) + size_t(j)] = v;
        }
      }
  return p;
}
inline NaiveResult naive_forward(const AttnProblem& pr) {
  const auto& s = pr.spec;
  const int64_t G = s.Hq / s.Hkv, dv = pr.dv();
  NaiveResult res;
  res.p = naive_map(pr, pr.q, pr.k);
  if (s.differential) {
    auto p2 = naive_map(pr, pr.q2, pr.k2);
    for (size_t i = 0; i < res.p.size(); ++i) {
      const int64_t h = int64_t(i / size_t(pr.S * pr.T)) % s.Hq;
      res.p[i] -= pr.lam[size_t(pr.nlambda == 1 ? 0 : h)] * p2[i];
    }
  }
  res.o.assign(pr.no(), 0.0);
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h)
      for (int64_t t = 0; t < pr.T; ++t)
        for (int64_t j = 0; j < pr.S; ++j) {
          const double pj = res.p[size_t(((b * s.Hq + h) * pr.T + t) * pr.S + j)];
          for (int64_t e = 0; e < dv; ++e)
            res.o[size_t(((b * s.Hq + h) * pr.T + t) * dv + e)] +=
                pj * pr.v[size_t(((b * s.Hkv + h / G) * pr.S_cap + j) * dv + e)];
        }
  return res;
}

}  // namespace attnlab::test
