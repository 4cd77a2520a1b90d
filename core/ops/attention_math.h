#pragma once
// Per-row arithmetic of the materialized attention, shared by the CPU loops
// (core/ops/attention_cpu.cpp) and the CUDA row kernels (cuda/attention_rows.cu), so the CPU
// tests exercise the arithmetic the GPU runs. `A` is the accumulation type (float on CUDA and
// for the f32 CPU path, double for the f64 CPU path). The parallel decomposition of a row
// (a loop on the CPU, a thread block on the GPU) is the only thing that differs.
#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/ops/attention.h"

namespace attnlab {

ATTNLAB_HD float attn_exp(float x) { return expf(x); }
ATTNLAB_HD double attn_exp(double x) { return exp(x); }
ATTNLAB_HD float attn_log(float x) { return logf(x); }
ATTNLAB_HD double attn_log(double x) { return log(x); }

// Number of visible keys of query t: keys form the prefix [0, n).
ATTNLAB_HD int64_t attn_visible_keys(int64_t S, const int32_t* key_lengths, int64_t b, bool causal,
                                     int64_t t, int64_t offset) {
  int64_t n = S;
  if (key_lengths) n = key_lengths[b] < n ? int64_t(key_lengths[b]) : n;
  if (causal && t + offset + 1 < n) n = t + offset + 1;
  return n < 0 ? 0 : n;
}

// Per-row controller values (identity when absent).
template <class A>
struct AttnRowCtrl {
  A tau = 1, add = 0;
  ATTNLAB_HD A apply(A raw) const { return raw * tau + add; }
};

// Normalisation constants of one row (one map), from the forward reductions.
template <class A>
struct AttnRowNorm {
  int mode = 0;    // AttnNorm as int
  A alpha = 0;     // ramp weight of the linear part
  A lse = 0;       // softmax, ramp: log Σ exp x
  A mn = 0;        // linear, ramp: min x
  A inv_z = 0;     // linear, ramp: 1 / Z
  ATTNLAB_HD A softmax_p(A x) const { return attn_exp(x - lse); }
  ATTNLAB_HD A linear_p(A x) const { return (x - mn + A(1)) * inv_z; }
  ATTNLAB_HD A prob(A x) const {
    switch (mode) {
      case int(AttnNorm::softmax): return softmax_p(x);
      case int(AttnNorm::linear): return linear_p(x);
      case int(AttnNorm::ramp): return alpha * linear_p(x) + (A(1) - alpha) * softmax_p(x);
      default: return x;  // relaxed_linear
    }
  }
  // log P for the entropy / KL statistics (distributions only). Analytic where P may underflow.
  ATTNLAB_HD A log_prob(A x, A p) const {
    switch (mode) {
      case int(AttnNorm::softmax): return x - lse;
      case int(AttnNorm::linear): return attn_log(x - mn + A(1)) + attn_log(inv_z);
      default: return attn_log(p);
    }
  }
};

ATTNLAB_HD bool attn_needs_max(int mode) {
  return mode == int(AttnNorm::softmax) || mode == int(AttnNorm::ramp);
}
ATTNLAB_HD bool attn_needs_min(int mode) {
  return mode == int(AttnNorm::linear) || mode == int(AttnNorm::ramp);
}

// Builds the constants from the reductions: mx = max x, sum_exp = Σ exp(x − mx),
// mn = min x, z = Σ (x − mn + 1). n = 0 (fully masked) yields the documented zeros.
template <class A>
ATTNLAB_HD AttnRowNorm<A> attn_make_norm(int mode, A alpha, int64_t n, A mx, A sum_exp, A mn, A z) {
  AttnRowNorm<A> r;
  r.mode = mode;
  r.alpha = alpha;
  if (n == 0) return r;
  if (attn_needs_max(mode)) r.lse = mx + attn_log(sum_exp);
  if (attn_needs_min(mode)) {
    r.mn = mn;
    r.inv_z = A(1) / z;
  }
  return r;
}

// Contribution of one visible key to the row statistics.
template <class A>
ATTNLAB_HD A attn_entropy_term(A p, A logp) { return p > A(0) ? -p * logp : A(0); }
// KL(P_o ‖ P) term, log P_o = raw − lse_raw analytic (P_o = softmax of the raw scores).
template <class A>
ATTNLAB_HD A attn_kl_term(A raw, A lse_raw, A logp) {
  A logpo = raw - lse_raw;
  A po = attn_exp(logpo);
  return po > A(0) ? po * (logpo - logp) : A(0);
}
// Unbiased variance from shifted sums: s1 = Σ (P − c), s2 = Σ (P − c)² over n keys (any c; a c
// near the mean keeps the cancellation small). n < 2: 0.
template <class A>
ATTNLAB_HD A attn_variance(A s1, A s2, int64_t n) {
  if (n < 2) return A(0);
  A v = (s2 - s1 * s1 / A(n)) / A(n - 1);
  return v > A(0) ? v : A(0);
}

// Backward of the normalisation of one map for one row. The reductions of pass 1 are
//   softmax: dot = Σ g P, dot_lin = Σ P;  linear: dot = Σ g P, sum_g = Σ g;
//   ramp: dot = Σ g P_softmax(x), dot_lin = Σ g P_linear(x), sum_g = Σ g;  relaxed_linear: none.
// finish() then turns softmax's Δ into Σ g P / Σ P: the stored P (bf16 on the GPU) sums to 1 only
// up to rounding, and dividing by its actual sum keeps Σ_j dx_j = 0, so a per-row additive
// controller still gets a zero gradient (METHODS §4.3) at any precision.
// dx(j) is then d loss / d x_j for a visible key (the argmin subgradient of METHODS §4.4 goes
// to the first index of the minimum).
template <class A>
struct AttnRowGrad {
  AttnRowNorm<A> norm;
  int64_t n = 0;
  int64_t imin = -1;
  A dot = 0, dot_lin = 0, sum_g = 0;
  ATTNLAB_HD void finish() {
    if (norm.mode == int(AttnNorm::softmax) && dot_lin > A(0)) dot /= dot_lin;
  }
  ATTNLAB_HD A dx(int64_t j, A g, A p_stored, A x) const {
    switch (norm.mode) {
      case int(AttnNorm::softmax): return p_stored * (g - dot);
      case int(AttnNorm::linear): {
        A r = (g - dot) * norm.inv_z;
        if (j == imin) r -= (sum_g - A(n) * dot) * norm.inv_z;
        return r;
      }
      case int(AttnNorm::ramp): {
        A r = norm.alpha * (g - dot_lin) * norm.inv_z;
        if (j == imin) r -= norm.alpha * (sum_g - A(n) * dot_lin) * norm.inv_z;
        return r + (A(1) - norm.alpha) * norm.softmax_p(x) * (g - dot);
      }
      default: return g;
    }
  }
};

}  // namespace attnlab
