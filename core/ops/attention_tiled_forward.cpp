// Tiled attention forward on the CPU (float, double): one (batch, head, query tile) per task,
// key tiles in order, the per-row state of attention_tiled_row.h, then the second score-only
// pass for captured rows and for linear/ramp entropy/KL (see attention_tiled.h for why).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/dispatch.h"
#include "core/ops/attention_tiled.h"
#include "core/ops/attention_tiled_impl.h"
#include "core/ops/attention_tiled_row.h"

namespace attnlab::tiled {
namespace {

template <class T>
T* opt(const Tensor& t) { return t.defined() ? t.ptr<std::remove_const_t<T>>() : nullptr; }

int64_t capture_slot(const int32_t* rows, int64_t nrows, int64_t t) {
  for (int64_t i = 0; i < nrows; ++i)
    if (rows[i] == t) return i;
  return -1;
}

template <class T>
struct FwdPtrs {
  using A = acc_t<T>;
  const T *q[2], *k[2], *v;
  const int32_t* klen;
  const A *add, *mul, *lam;
  int64_t nlam = 0;
  T *out, *parts;
  A *lse[2], *rsum[2];
  int32_t* rmin[2];
  const int32_t *cap_rows, *spans;
  A *cap_scores[2], *cap_probs, *ent, *kl, *var, *span_mass;

  explicit FwdPtrs(const AttentionTiledArgs& ta) {
    const AttentionArgs& a = ta.attn;
    q[0] = a.q.ptr<T>(), q[1] = opt<const T>(a.q2);
    k[0] = a.k.ptr<T>(), k[1] = opt<const T>(a.k2);
    v = a.v.ptr<T>();
    klen = opt<const int32_t>(a.key_lengths);
    add = opt<const A>(a.score_add), mul = opt<const A>(a.score_mul), lam = opt<const A>(a.lambda);
    nlam = a.lambda.defined() ? a.lambda.dim(0) : 0;
    out = a.out.ptr<T>(), parts = opt<T>(ta.out_parts);
    lse[0] = opt<A>(a.lse), lse[1] = opt<A>(a.lse2);
    rsum[0] = opt<A>(a.row_sum), rsum[1] = opt<A>(a.row_sum2);
    rmin[0] = opt<int32_t>(a.row_min), rmin[1] = opt<int32_t>(a.row_min2);
    const AttentionCaptures& c = a.captures;
    cap_rows = opt<const int32_t>(c.rows), spans = opt<const int32_t>(c.spans);
    cap_scores[0] = opt<A>(c.scores), cap_scores[1] = opt<A>(c.scores2), cap_probs = opt<A>(c.probs);
    ent = opt<A>(c.entropy), kl = opt<A>(c.kl), var = opt<A>(c.variance), span_mass = opt<A>(c.span_mass);
  }
};

// Second, score-only pass over one row once its constants are final: captured scores/probs
// (every key < S, masked ones included, as the materialized op captures them) and, for linear
// and ramp, the entropy/KL terms that need log(x − m + 1) with the final m.
template <class T>
void second_pass_row(const AttnShape& sh, const AttentionSpec& s, const FwdPtrs<T>& p, const TiledRow<acc_t<T>>& row,
                     const TiledRowFinal<acc_t<T>>& fin, const TiledRowState<acc_t<T>>& st, int64_t slot,
                     bool stats) {
  using A = acc_t<T>;
  const int nmaps = s.differential ? 2 : 1;
  const int64_t S = sh.S;
  const int64_t cap_off = ((row.b * sh.Hq + row.h) * sh.nrows_capture + slot) * S;
  const A lse_raw = st.n > 0 && st.raw_on ? st.Mo + attn_log(st.lo) : A(0);
  A s_ent = 0, s_kl = 0;
  for (int64_t j = 0; j < (slot >= 0 ? S : row.n); ++j) {
    A x[2] = {0, 0}, raw[2] = {0, 0};
    for (int m = 0; m < nmaps; ++m) {
      raw[m] = tiled_score<T, A>(p.q[m] + row.r * sh.d, p.k[m] + (row.kv_base + j) * sh.d, sh.d, A(sh.scale));
      x[m] = row.ctrl.apply(raw[m]);
      if (slot >= 0 && p.cap_scores[m]) p.cap_scores[m][cap_off + j] = x[m];
    }
    A prob = 0;
    if (j < row.n) {
      const A p1 = fin.norm[0].prob(x[0]);
      prob = nmaps == 2 ? p1 - row.lambda * fin.norm[1].prob(x[1]) : p1;
      if (stats) {
        const A logp = fin.norm[0].log_prob(x[0], p1);
        s_ent += attn_entropy_term(prob, logp);
        if (p.kl) s_kl += attn_kl_term(raw[0], lse_raw, logp);
      }
    }
    if (slot >= 0 && p.cap_probs) p.cap_probs[cap_off + j] = prob;
  }
  if (stats && p.ent) p.ent[row.r] = s_ent;
  if (stats && p.kl) p.kl[row.r] = s_kl;
}

template <class T>
void forward_impl(const AttentionTiledArgs& ta, const AttnShape& sh) {
  using A = acc_t<T>;
  const AttentionSpec& s = ta.attn.spec;
  const FwdPtrs<T> p(ta);
  const int mode = int(s.norm), nmaps = s.differential ? 2 : 1;
  const A alpha = A(s.ramp_alpha);
  const int64_t Br = ta.tiles.Br, Bc = ta.tiles.Bc, dv = sh.dv, d = sh.d, ns = sh.nspans;
  const int64_t ntiles_q = (sh.T + Br - 1) / Br;
  const bool softmax_stats = s.norm == AttnNorm::softmax && !s.differential;
  const bool second_stats = (p.ent || p.kl) && !softmax_stats;  // linear, ramp
  const bool gram = p.var || (p.ent && softmax_stats);
  const bool raw_on = p.kl != nullptr;
  // Basis functions that O needs (the others only feed scalar statistics).
  bool vec_on[kTiledBasis] = {};
  for (int m = 0; m < nmaps; ++m) {
    vec_on[tiled_e(m)] = attn_needs_max(mode);
    vec_on[tiled_u(m)] = vec_on[0] = !attn_needs_max(mode) || attn_needs_min(mode);
  }
  const int64_t nparts = attention_tiled_nparts(s);

#pragma omp parallel for schedule(dynamic) if (sh.rows() * sh.S > (1 << 16))
  for (int64_t task = 0; task < sh.B * sh.Hq * ntiles_q; ++task) {
    const int64_t bh = task / ntiles_q, i0 = (task % ntiles_q) * Br, i1 = std::min(sh.T, i0 + Br);
    const int64_t rows = i1 - i0;
    // Per-tile accumulators (registers / shared memory on a GPU): Σ φ·v per row and basis, span sums.
    std::vector<TiledRow<A>> row(static_cast<size_t>(rows));
    std::vector<TiledRowState<A>> st(static_cast<size_t>(rows));
    std::vector<A> acc(static_cast<size_t>(rows * kTiledBasis * dv), A(0)), span(static_cast<size_t>(rows * ns * kTiledBasis), A(0));
    std::vector<A> xt(static_cast<size_t>(2 * Bc)), rawt(static_cast<size_t>(Bc));
    int64_t nmax = 0;
    for (int64_t i = 0; i < rows; ++i) {
      row[size_t(i)] = make_row<A>(sh, s, p.klen, p.add, p.mul, p.lam, p.nlam, bh * sh.T + i0 + i);
      st[size_t(i)].init(nmaps, gram, raw_on);
      nmax = std::max(nmax, row[size_t(i)].n);
    }
    for (int64_t j0 = 0; j0 < nmax; j0 += Bc) {  // tiles past every row's visible keys are skipped
      for (int64_t i = 0; i < rows; ++i) {
        const TiledRow<A>& rw = row[size_t(i)];
        TiledRowState<A>& rs = st[size_t(i)];
        const int64_t j1 = std::min(j0 + Bc, rw.n);
        if (j1 <= j0) continue;
        A* ai = &acc[size_t(i * kTiledBasis * dv)];
        A* spi = &span[size_t(i * ns * kTiledBasis)];
        // Scores of the tile, the tile max and min, then rescale before accumulating.
        for (int m = 0; m < nmaps; ++m) {
          A tmax = -A(INFINITY);
          for (int64_t j = j0; j < j1; ++j) {
            const A raw = tiled_score<T, A>(p.q[m] + rw.r * d, p.k[m] + (rw.kv_base + j) * d, d, A(sh.scale));
            const A x = rw.ctrl.apply(raw);
            xt[size_t(m * Bc + j - j0)] = x;
            if (m == 0) rawt[size_t(j - j0)] = raw;
            if (j == 0) rs.K[m] = x;
            tmax = std::max(tmax, x);
            if (x < rs.mn[m]) rs.mn[m] = x, rs.imin[m] = j;
          }
          if (attn_needs_max(mode) && tmax > rs.M[m]) {
            const A f = attn_exp(rs.M[m] - tmax);
            rs.rescale(m, f);
            for (int64_t e = 0; e < dv; ++e) ai[tiled_e(m) * dv + e] *= f;
            for (int64_t k = 0; k < ns; ++k) spi[k * kTiledBasis + tiled_e(m)] *= f;
            rs.M[m] = tmax;
          }
        }
        if (raw_on) {
          A tmax = -A(INFINITY);
          for (int64_t j = j0; j < j1; ++j) tmax = std::max(tmax, rawt[size_t(j - j0)]);
          if (tmax > rs.Mo) {
            const A f = attn_exp(rs.Mo - tmax);
            rs.lo *= f, rs.so *= f, rs.Mo = tmax;
          }
        }
        for (int64_t j = j0; j < j1; ++j) {
          A phi[kTiledBasis] = {A(1), 0, 0, 0, 0};
          for (int m = 0; m < nmaps; ++m) {
            const A x = xt[size_t(m * Bc + j - j0)];
            if (attn_needs_max(mode)) phi[tiled_e(m)] = attn_exp(x - rs.M[m]);
            phi[tiled_u(m)] = x - rs.K[m];
          }
          for (int b = 0; b < kTiledBasis; ++b) rs.sum[b] += phi[b];
          if (gram)
            for (int b = 0; b < kTiledBasis; ++b)
              for (int c = 0; c < kTiledBasis; ++c) rs.gram[b][c] += phi[b] * phi[c];
          for (int64_t k = 0; k < ns; ++k)
            if (j >= p.spans[2 * k] && j < p.spans[2 * k + 1])
              for (int b = 0; b < kTiledBasis; ++b) spi[k * kTiledBasis + b] += phi[b];
          if (raw_on) {
            const A eo = attn_exp(rawt[size_t(j - j0)] - rs.Mo);
            rs.lo += eo;
            rs.so += eo * (rawt[size_t(j - j0)] - xt[size_t(j - j0)]);
          }
          const T* vj = p.v + (rw.kv_base + j) * dv;
          for (int b = 0; b < kTiledBasis; ++b)
            if (vec_on[b])
              for (int64_t e = 0; e < dv; ++e) ai[b * dv + e] += phi[b] * A(vj[e]);
        }
        rs.n = j1;
      }
    }

    for (int64_t i = 0; i < rows; ++i) {
      const TiledRow<A>& rw = row[size_t(i)];
      const TiledRowState<A>& rs = st[size_t(i)];
      const int64_t r = rw.r;
      const TiledRowFinal<A> fin = tiled_finalize<A>(rs, mode, alpha, rw.lambda);
      const A* ai = &acc[size_t(i * kTiledBasis * dv)];
      for (int64_t e = 0; e < dv; ++e) {
        A o = 0;
        for (int b = 0; b < kTiledBasis; ++b)
          if (vec_on[b]) o += fin.coef[b] * ai[b * dv + e];
        p.out[r * dv + e] = T(o);
      }
      if (nparts > 1)
        for (int m = 0; m < nmaps; ++m)
          for (int k = 0; k < nparts / nmaps; ++k)
            for (int64_t e = 0; e < dv; ++e) {
              A o = 0;
              for (int b = 0; b < kTiledBasis; ++b)
                if (vec_on[b]) o += fin.part_coef[m][k][b] * ai[b * dv + e];
              p.parts[(r * nparts + m * (nparts / nmaps) + k) * dv + e] = T(o);
            }
      for (int m = 0; m < nmaps; ++m) {
        if (p.lse[m]) p.lse[m][r] = fin.norm[m].lse;
        if (p.rmin[m]) p.rmin[m][r] = int32_t(rs.imin[m]);
        if (p.rsum[m]) p.rsum[m][r] = fin.z[m];
      }
      const int64_t n = rs.n;
      if (p.var) {
        const A centre = n > 0 && s.norm != AttnNorm::relaxed_linear ? (A(1) - rw.lambda) / A(n) : A(0);
        A sp = tiled_dot(fin.coef, rs.sum), sp2 = 0;
        for (int b = 0; b < kTiledBasis; ++b) sp2 += fin.coef[b] * tiled_dot(fin.coef, rs.gram[b]);
        const A s1 = sp - A(n) * centre, s2 = sp2 - A(2) * centre * sp + A(n) * centre * centre;
        p.var[r] = attn_variance(s1, s2, n);
      }
      for (int64_t k = 0; k < ns; ++k)
        p.span_mass[r * ns + k] = tiled_dot(fin.coef, &span[size_t((i * ns + k) * kTiledBasis)]);
      if (softmax_stats && n > 0) {
        // H = lse − E[x] = lse − K − Σ e·u / ℓ;  KL = lse − lse_raw + Σ e_raw·(Sc − x) / ℓ_raw.
        const A l = rs.sum[tiled_e(0)];
        if (p.ent) p.ent[r] = fin.norm[0].lse - rs.K[0] - rs.gram[tiled_e(0)][tiled_u(0)] / l;
        if (p.kl) p.kl[r] = fin.norm[0].lse - (rs.Mo + attn_log(rs.lo)) + rs.so / rs.lo;
      } else if (softmax_stats) {
        if (p.ent) p.ent[r] = 0;
        if (p.kl) p.kl[r] = 0;
      }
      const int64_t slot = p.cap_rows ? capture_slot(p.cap_rows, sh.nrows_capture, rw.t) : -1;
      if (slot >= 0 || second_stats) second_pass_row<T>(sh, s, p, rw, fin, rs, slot, second_stats);
    }
  }
}

}  // namespace

void forward_cpu(const AttentionTiledArgs& a, const AttnShape& sh) {
  dispatch_cpu_float(a.attn.q.dtype, "attention_tiled_forward", [&](auto t) { forward_impl<decltype(t)>(a, sh); });
}

}  // namespace attnlab::tiled
