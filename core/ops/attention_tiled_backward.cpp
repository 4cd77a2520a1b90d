// Tiled attention backward on the CPU (float, double), FlashAttention-2 order: a row pass for the
// Δ terms and the linear argmin correction, then per (batch, kv head) the key tiles in order with
// the query tiles of every head of the group inside, then a row pass that finishes dQ, dτ, da, dλ.
// Deterministic: every accumulator has one owner and a fixed summation order.
#include <algorithm>
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

// Per-row constants the row pass leaves in the workspace, per map: lse, m, 1/Z, Δ_softmax,
// Δ_linear, Σ_j g_j; then dλ and da of the row.
enum : int { kLse, kMin, kInvZ, kDsm, kDlin, kSumG, kPerMap };
constexpr int kDlam = 2 * kPerMap, kDadd = kDlam + 1, kStats = kDadd + 1;

template <class T>
struct BwdPtrs {
  using A = acc_t<T>;
  const T *q[2], *k[2], *v, *dout, *out, *parts;
  const int32_t* klen;
  const A *add, *mul, *lam, *lse[2], *rsum[2];
  const int32_t* rmin[2];
  int64_t nlam = 0;
  T *dq[2], *dk[2], *dv;
  A *dadd, *dmul, *dlam;
  A *stats, *dq_acc;

  BwdPtrs(const AttentionTiledBackwardArgs& ta, const AttnShape& sh) {
    const AttentionBackwardArgs& a = ta.attn;
    q[0] = a.q.ptr<T>(), q[1] = opt<const T>(a.q2);
    k[0] = a.k.ptr<T>(), k[1] = opt<const T>(a.k2);
    v = a.v.ptr<T>(), dout = a.dout.ptr<T>();
    out = opt<const T>(ta.out), parts = opt<const T>(ta.out_parts);
    klen = opt<const int32_t>(a.key_lengths);
    add = opt<const A>(a.score_add), mul = opt<const A>(a.score_mul), lam = opt<const A>(a.lambda);
    nlam = a.lambda.defined() ? a.lambda.dim(0) : 0;
    lse[0] = opt<const A>(a.lse), lse[1] = opt<const A>(a.lse2);
    rsum[0] = opt<const A>(a.row_sum), rsum[1] = opt<const A>(a.row_sum2);
    rmin[0] = opt<const int32_t>(a.row_min), rmin[1] = opt<const int32_t>(a.row_min2);
    dq[0] = opt<T>(a.dq), dq[1] = opt<T>(a.dq2), dk[0] = opt<T>(a.dk), dk[1] = opt<T>(a.dk2);
    dv = opt<T>(a.dv);
    dadd = opt<A>(a.dscore_add), dmul = opt<A>(a.dscore_mul), dlam = opt<A>(a.dlambda);
    stats = static_cast<A*>(a.workspace.data);
    dq_acc = stats + sh.rows() * kStats;
  }
};

// The materialized op's row gradient (attention_math.h) rebuilt from the saved constants.
template <class A>
AttnRowGrad<A> row_grad(const A* st, int mode, A alpha, int64_t n, int64_t imin) {
  AttnRowGrad<A> g;
  g.n = n, g.imin = imin;
  g.norm.mode = mode, g.norm.alpha = alpha;
  g.norm.lse = st[kLse], g.norm.mn = st[kMin], g.norm.inv_z = st[kInvZ];
  g.dot = mode == int(AttnNorm::linear) ? st[kDlin] : st[kDsm];
  g.dot_lin = mode == int(AttnNorm::ramp) ? st[kDlin] : A(0);
  g.sum_g = st[kSumG];
  return g;
}

template <class T>
void backward_impl(const AttentionTiledBackwardArgs& ta, const AttnShape& sh) {
  using A = acc_t<T>;
  const AttentionSpec& s = ta.attn.spec;
  const BwdPtrs<T> p(ta, sh);
  const int mode = int(s.norm), nmaps = s.differential ? 2 : 1;
  const A alpha = A(s.ramp_alpha), scale = A(sh.scale);
  const int64_t d = sh.d, dv = sh.dv, Br = ta.tiles.Br, Bc = ta.tiles.Bc;
  const int64_t nparts = attention_tiled_nparts(s), nper = nparts / nmaps;
  const bool ramp = s.norm == AttnNorm::ramp;

  // Row pass: Δ = g_scale·dO·O_part per map and part, Σ_j g_j, the constants of P, dλ and da.
#pragma omp parallel for schedule(static) if (sh.rows() * sh.S > (1 << 16))
  for (int64_t r = 0; r < sh.rows(); ++r) {
    const TiledRow<A> rw = make_row<A>(sh, s, p.klen, p.add, p.mul, p.lam, p.nlam, r);
    A* st = p.stats + r * kStats;
    std::fill(st, st + kStats, A(0));
    std::fill(p.dq_acc + r * nmaps * d, p.dq_acc + (r + 1) * nmaps * d, A(0));
    if (rw.n == 0) continue;
    const T* go = p.dout + r * dv;
    auto dot_dout = [&](const T* x) {
      A acc = 0;
      for (int64_t e = 0; e < dv; ++e) acc += A(go[e]) * A(x[e]);
      return acc;
    };
    auto part = [&](int m, int64_t k) { return nparts == 1 ? p.out + r * dv : p.parts + (r * nparts + m * nper + k) * dv; };
    // Σ_j g_j = dO·Σ_{j<n} v_j: one prefix sum of V per kv head on a GPU.
    A g_all = 0;
    if (attn_needs_min(mode) || mode == int(AttnNorm::relaxed_linear)) {
      for (int64_t e = 0; e < dv; ++e) {
        A vs = 0;
        for (int64_t j = 0; j < rw.n; ++j) vs += A(p.v[(rw.kv_base + j) * dv + e]);
        g_all += A(go[e]) * vs;
      }
    }
    const A gscale[2] = {A(1), -rw.lambda};
    for (int m = 0; m < nmaps; ++m) {
      A* sm = st + m * kPerMap;
      if (attn_needs_max(mode)) {
        sm[kLse] = (m == 0 ? p.lse[0] : p.lse[1])[r];
        sm[kDsm] = gscale[m] * dot_dout(part(m, 0));
      }
      if (attn_needs_min(mode)) {
        const int64_t imin = p.rmin[m][r];
        sm[kMin] = rw.ctrl.apply(tiled_score<T, A>(p.q[m] + r * d, p.k[m] + (rw.kv_base + imin) * d, d, scale));
        sm[kInvZ] = A(1) / p.rsum[m][r];
        sm[kDlin] = gscale[m] * dot_dout(part(m, ramp ? 1 : 0));
      }
      sm[kSumG] = gscale[m] * g_all;
    }
    if (s.differential) {
      st[kDlam] = ramp ? -((A(1) - alpha) * dot_dout(part(1, 0)) + alpha * dot_dout(part(1, 1)))
                       : -dot_dout(part(1, 0));
    }
    // Σ_j dx_j vanishes for every normalising map (a shifts x, max and min alike).
    if (mode == int(AttnNorm::relaxed_linear)) st[kDadd] = (gscale[0] + (nmaps == 2 ? gscale[1] : A(0))) * g_all;
  }

  // Key tiles (one owner per dK, dV tile), inside them every query tile of the kv head's group.
#pragma omp parallel for schedule(dynamic) if (sh.rows() * sh.S > (1 << 16))
  for (int64_t bk = 0; bk < sh.B * sh.Hkv; ++bk) {
    const int64_t b = bk / sh.Hkv, hkv = bk % sh.Hkv, kv0 = bk * sh.S_cap;
    std::vector<A> dk_acc(static_cast<size_t>(2 * Bc * d)), dv_acc(static_cast<size_t>(Bc * dv));
    for (int64_t j0 = 0; j0 < sh.S; j0 += Bc) {
      const int64_t j1 = std::min(sh.S, j0 + Bc);
      std::fill(dk_acc.begin(), dk_acc.end(), A(0));
      std::fill(dv_acc.begin(), dv_acc.end(), A(0));
      for (int64_t h = hkv * sh.G; h < (hkv + 1) * sh.G; ++h)
        for (int64_t i0 = 0; i0 < sh.T; i0 += Br)
          for (int64_t i = i0; i < std::min(sh.T, i0 + Br); ++i) {
            const int64_t r = (b * sh.Hq + h) * sh.T + i;
            const TiledRow<A> rw = make_row<A>(sh, s, p.klen, p.add, p.mul, p.lam, p.nlam, r);
            if (rw.n <= j0) continue;  // a causal / padded tile: skipped like a kernel skips it
            const A* st = p.stats + r * kStats;
            AttnRowGrad<A> g[2];
            for (int m = 0; m < nmaps; ++m)
              g[m] = row_grad<A>(st + m * kPerMap, mode, alpha, rw.n, p.rmin[m] ? p.rmin[m][r] : -1);
            const A gscale[2] = {A(1), -rw.lambda};
            const T* go = p.dout + r * dv;
            for (int64_t j = j0; j < std::min(j1, rw.n); ++j) {
              A dp = 0;
              for (int64_t e = 0; e < dv; ++e) dp += A(go[e]) * A(p.v[(kv0 + j) * dv + e]);
              A prob = 0;
              for (int m = 0; m < nmaps; ++m) {
                const T* qi = p.q[m] + r * d;
                const T* kj = p.k[m] + (kv0 + j) * d;
                const A x = rw.ctrl.apply(tiled_score<T, A>(qi, kj, d, scale));
                const A pm = g[m].norm.prob(x);
                prob += gscale[m] * pm;
                const A dx = g[m].dx(j, gscale[m] * dp, pm, x);
                const A dsk = dx * rw.ctrl.tau * scale;
                A* dkj = &dk_acc[size_t((m * Bc + j - j0) * d)];
                A* dqa = p.dq_acc + (r * nmaps + m) * d;
                for (int64_t e = 0; e < d; ++e) {
                  dkj[e] += dsk * A(qi[e]);
                  dqa[e] += dx * scale * A(kj[e]);
                }
              }
              A* dvj = &dv_acc[size_t((j - j0) * dv)];
              for (int64_t e = 0; e < dv; ++e) dvj[e] += prob * A(go[e]);
            }
          }
      for (int64_t j = j0; j < j1; ++j) {
        for (int m = 0; m < nmaps; ++m)
          if (p.dk[m])
            for (int64_t e = 0; e < d; ++e) p.dk[m][(kv0 + j) * d + e] = T(dk_acc[size_t((m * Bc + j - j0) * d + e)]);
        if (p.dv)
          for (int64_t e = 0; e < dv; ++e) p.dv[(kv0 + j) * dv + e] = T(dv_acc[size_t((j - j0) * dv + e)]);
      }
    }
    // Cache slots no query sees.
    for (int m = 0; m < nmaps; ++m)
      if (p.dk[m]) std::fill(p.dk[m] + (kv0 + sh.S) * d, p.dk[m] + (kv0 + sh.S_cap) * d, T(0));
    if (p.dv) std::fill(p.dv + (kv0 + sh.S) * dv, p.dv + (kv0 + sh.S_cap) * dv, T(0));
  }

  // Finishing row pass: dQ = τ·dQ_acc, dτ = Σ_maps q·dQ_acc = Σ_j dx_j·Sc_j, da.
#pragma omp parallel for schedule(static) if (sh.rows() * sh.S > (1 << 16))
  for (int64_t r = 0; r < sh.rows(); ++r) {
    const A tau = p.mul ? p.mul[r] : A(1);
    A dtau = 0;
    for (int m = 0; m < nmaps; ++m) {
      const A* acc = p.dq_acc + (r * nmaps + m) * d;
      for (int64_t e = 0; e < d; ++e) {
        if (p.dq[m]) p.dq[m][r * d + e] = T(tau * acc[e]);
        dtau += A(p.q[m][r * d + e]) * acc[e];
      }
    }
    if (p.dmul) p.dmul[r] = dtau;
    if (p.dadd) p.dadd[r] = p.stats[r * kStats + kDadd];
  }
  if (p.dlam) {
    const int64_t nl = ta.attn.dlambda.dim(0);
    for (int64_t i = 0; i < nl; ++i) p.dlam[i] = 0;
    for (int64_t r = 0; r < sh.rows(); ++r) p.dlam[nl == 1 ? 0 : (r / sh.T) % sh.Hq] += p.stats[r * kStats + kDlam];
  }
}

}  // namespace

size_t backward_stats_bytes(const AttnShape& sh, int nmaps, DType dt) {
  return size_t(sh.rows()) * size_t(kStats + nmaps * sh.d) * dtype_size(acc_dtype(dt));
}

void backward_cpu(const AttentionTiledBackwardArgs& a, const AttnShape& sh) {
  dispatch_cpu_float(a.attn.q.dtype, "attention_tiled_backward", [&](auto t) { backward_impl<decltype(t)>(a, sh); });
}

}  // namespace attnlab::tiled
