#pragma once
// Per-element and per-row arithmetic of the backward head, shared by the CPU loops and the CUDA
// kernels (core/ops/backward_head.h has the definitions).
#include <math.h>

#include <cstdint>

#include "core/hd.h"
#include "core/ops/cross_entropy_math.h"

namespace attnlab {

ATTNLAB_HD float bh_sqrt(float x) { return sqrtf(x); }
ATTNLAB_HD double bh_sqrt(double x) { return sqrt(x); }

// Unnormalised weight of one vocabulary entry: exp(x − shift), or 0 outside the top-k set.
template <class A>
ATTNLAB_HD A bh_weight(A x, A shift, bool has_theta, A theta) {
  return (has_theta && !(x >= theta)) ? A(0) : ce_exp(x - shift);
}

// log p_j of the mixture from the per-head log π^h_j: log((1/H) Σ_h exp(lp_h)).
template <class A>
ATTNLAB_HD A bh_mixture_logp(const A* lp, int64_t H) {
  A m = lp[0];
  for (int64_t h = 1; h < H; ++h) m = nan_max(m, lp[h]);
  if (m == -A(INFINITY)) return m;
  A s = 0;
  for (int64_t h = 0; h < H; ++h) s += ce_exp(lp[h] - m);
  return m + ce_log(s / A(H));
}

// ρ_h = π^h_y / (H p_y) = exp(log π^h_y + loss − log H): the head's share of the target mass
// (1 for a single head).
template <class A>
ATTNLAB_HD A bh_responsibility(A target_logp, A loss, int64_t H) {
  return H == 1 ? A(1) : ce_exp(target_logp + loss - ce_log(A(H)));
}

// dL/ds_j of one head for one row: scale · ρ · (π_j − onehot(y)_j), π_j = exp(s_j − lse).
template <class A>
ATTNLAB_HD A bh_score_grad(A s, A lse, bool is_target, A rho_scale) {
  return rho_scale * (ce_exp(s - lse) - (is_target ? A(1) : A(0)));
}

// RMSNorm r of one slice of C values (METHODS P2): (mean x² + eps)^(-1/2).
template <class A>
ATTNLAB_HD A bh_rstd(A sum_sq, int64_t C, A eps) {
  return A(1) / bh_sqrt(sum_sq / A(C) + eps);
}

// RMSNorm backward of one element (P2): dx = r·g − x·r³·mean(g·x), g = γ·dy.
template <class A>
ATTNLAB_HD A bh_rmsnorm_dx(A g, A x, A rstd, A mean_gx) {
  return rstd * (g - x * rstd * rstd * mean_gx);
}

// Order key of a float: larger floats have larger keys (−inf smallest among non-NaN values);
// NaN maps below everything.
ATTNLAB_HD uint32_t bh_order_key(uint32_t bits) {
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return 0u;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
ATTNLAB_HD uint32_t bh_key_bits(uint32_t key) {
  return (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
}

}  // namespace attnlab
