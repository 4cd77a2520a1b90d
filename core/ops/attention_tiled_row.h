#pragma once
// Per-row state of the tiled attention (core/ops/attention_tiled.h): the running reductions a
// fused kernel keeps per query row, their rescaling when a running max moves, and the final
// coefficients that turn the basis sums into P, O and the statistics. Written once for the CPU
// reference and the CUDA kernels to come (ATTNLAB_HD); the normalisation and gradient arithmetic
// itself is the materialized op's (attention_math.h).
#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/ops/attention_math.h"

namespace attnlab {

// Basis functions of one key in one row: 1, then per map m: e_m = exp(x_m − M_m), u_m = x_m − K_m.
constexpr int kTiledBasis = 5;
ATTNLAB_HD constexpr int tiled_e(int m) { return 1 + 2 * m; }
ATTNLAB_HD constexpr int tiled_u(int m) { return 2 + 2 * m; }

// Weights of the softmax and linear parts of a normalisation (relaxed_linear: neither).
template <class A>
ATTNLAB_HD A tiled_softmax_weight(int mode, A alpha) {
  return mode == int(AttnNorm::softmax) ? A(1) : mode == int(AttnNorm::ramp) ? A(1) - alpha : A(0);
}
template <class A>
ATTNLAB_HD A tiled_linear_weight(int mode, A alpha) {
  return mode == int(AttnNorm::linear) ? A(1) : mode == int(AttnNorm::ramp) ? alpha : A(0);
}

// Scaled score s·q·k, the same arithmetic in the forward and the backward, so the backward's
// m = x at row_min equals the forward's minimum bit for bit.
template <class T, class A>
inline A tiled_score(const T* q, const T* k, int64_t d, A scale) {
  A s = 0;
  for (int64_t e = 0; e < d; ++e) s += A(q[e]) * A(k[e]);
  return s * scale;
}

template <class A>
struct TiledRowState {
  int nmaps = 1;
  bool gram_on = false;  // Σ φ·φ' (variance, softmax entropy)
  bool raw_on = false;   // raw-score softmax (KL)
  int64_t n = 0;         // visible keys seen
  A K[2] = {0, 0};       // shift of u: x of key 0
  A M[2] = {0, 0};       // running max of x (−inf before the first key)
  A mn[2] = {0, 0};      // running min of x
  int64_t imin[2] = {-1, -1};
  A sum[kTiledBasis] = {};
  A gram[kTiledBasis][kTiledBasis] = {};
  A Mo = 0, lo = 0, so = 0;  // raw softmax: max, Σ exp(Sc − Mo), Σ exp(Sc − Mo)·(Sc − x)

  ATTNLAB_HD void init(int nm, bool gram, bool raw) {
    nmaps = nm, gram_on = gram, raw_on = raw;
    const A inf = A(INFINITY);
    for (int m = 0; m < 2; ++m) M[m] = -inf, mn[m] = inf;
    Mo = -inf;
  }
  // Multiplies every scalar sum holding e_m by f (f² for e_m²); the caller rescales Σ e_m·v.
  ATTNLAB_HD void rescale(int m, A f) {
    const int e = tiled_e(m);
    sum[e] *= f;
    if (!gram_on) return;
    for (int i = 0; i < kTiledBasis; ++i) gram[e][i] *= f, gram[i][e] *= f;  // [e][e] gets f²
  }
};

// Final per-row constants: each map's normalisation and the coefficients of P in the basis,
// P_j = Σ_b coef[b]·φ_b(j) (A1 − λ·A2 for differential).
template <class A>
struct TiledRowFinal {
  AttnRowNorm<A> norm[2];
  A z[2] = {0, 0};
  A coef[kTiledBasis] = {};
  A part_coef[2][2][kTiledBasis] = {};  // per map, per part (softmax or the only one; linear)
};

template <class A>
ATTNLAB_HD TiledRowFinal<A> tiled_finalize(const TiledRowState<A>& st, int mode, A alpha, A lambda) {
  TiledRowFinal<A> f;
  const A ws = tiled_softmax_weight(mode, alpha), wl = tiled_linear_weight(mode, alpha);
  for (int m = 0; m < st.nmaps; ++m) {
    const int e = tiled_e(m), u = tiled_u(m);
    const A shift = st.mn[m] - st.K[m] - A(1);  // linear numerator u − shift = x − m + 1
    f.z[m] = st.n > 0 && attn_needs_min(mode) ? st.sum[u] - shift * A(st.n) : A(0);
    f.norm[m] = attn_make_norm<A>(mode, alpha, st.n, st.M[m], st.sum[e], st.mn[m], f.z[m]);
    if (st.n == 0) continue;
    A(&p)[2][kTiledBasis] = f.part_coef[m];
    if (mode == int(AttnNorm::relaxed_linear)) {
      p[0][u] = 1, p[0][0] = st.K[m];
    } else {
      if (attn_needs_max(mode)) p[0][e] = A(1) / st.sum[e];
      if (attn_needs_min(mode)) {
        const int k = mode == int(AttnNorm::ramp) ? 1 : 0;
        p[k][u] = f.norm[m].inv_z, p[k][0] = -shift * f.norm[m].inv_z;
      }
    }
    const A factor = m == 0 ? A(1) : -lambda;
    const A w0 = mode == int(AttnNorm::ramp) ? ws : A(1);
    for (int b = 0; b < kTiledBasis; ++b) f.coef[b] += factor * (w0 * p[0][b] + wl * p[1][b]);
  }
  return f;
}

// Σ_b c[b]·s[b] over the basis.
template <class A>
ATTNLAB_HD A tiled_dot(const A* c, const A* s) {
  A r = 0;
  for (int b = 0; b < kTiledBasis; ++b) r += c[b] * s[b];
  return r;
}

}  // namespace attnlab
