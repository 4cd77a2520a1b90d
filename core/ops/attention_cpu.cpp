// CPU implementation of the materialized attention (float and double): OpenBLAS GEMMs batched
// over (batch, kv group) and plain row loops built from the shared row arithmetic in
// attention_math.h. It is the oracle for the CUDA kernels and the finite-difference tests.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/dispatch.h"
#include "core/ops/attention.h"
#include "core/ops/attention_math.h"

namespace attnlab::cpu {
namespace {

void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M),
              int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M),
              int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// C[i] = alpha·op(A[i])·op(B[i]) for the B·Hkv (batch, kv group) pairs; strides in elements.
template <class T>
void gemm_groups(const AttnShape& sh, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const T* A, int64_t lda, int64_t sa, const T* B, int64_t ldb, int64_t sb, T* C,
                 int64_t ldc, int64_t sc) {
  for (int64_t i = 0; i < sh.B * sh.Hkv; ++i)
    blas_gemm(ta, tb, M, N, K, T(alpha), A + i * sa, lda, B + i * sb, ldb, T(0), C + i * sc, ldc);
}

template <class T>
T* ptr_or_null(const Tensor& t) { return t.defined() ? t.ptr<T>() : nullptr; }

// Zeroes rows [S, S_cap) of a [B, Hkv, S_cap, width] gradient: cache slots no query sees.
template <class T>
void zero_tail_rows(const AttnShape& sh, T* g, int64_t width) {
  if (!g || sh.S == sh.S_cap) return;
  for (int64_t i = 0; i < sh.B * sh.Hkv; ++i)
    std::fill(g + (i * sh.S_cap + sh.S) * width, g + (i + 1) * sh.S_cap * width, T(0));
}

// Slot of query t in the capture list, or −1.
int64_t capture_slot(const int32_t* rows, int64_t nrows, int64_t t) {
  for (int64_t i = 0; i < nrows; ++i)
    if (rows[i] == t) return i;
  return -1;
}

template <class T>
void forward_impl(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh) {
  using A = acc_t<T>;
  const AttentionSpec& s = a.spec;
  const bool diff = s.differential;
  const int nmaps = diff ? 2 : 1;
  const int mode = int(s.norm);
  const int64_t S = sh.S, T_ = sh.T, GT = sh.G * sh.T;
  const Tensor* qs[2] = {&a.q, &a.q2};
  const Tensor* ks[2] = {&a.k, &a.k2};
  T* maps[2] = {a.probs.ptr<T>(), diff ? a.probs2.ptr<T>() : nullptr};
  for (int m = 0; m < nmaps; ++m)
    gemm_groups<T>(sh, false, true, GT, S, sh.d, sh.scale, qs[m]->ptr<T>(), sh.d, GT * sh.d,
                   ks[m]->ptr<T>(), sh.d, sh.S_cap * sh.d, maps[m], S, GT * S);
  T* pcomb = diff ? static_cast<T*>(a.workspace.data) : maps[0];

  const int32_t* klen = ptr_or_null<int32_t>(a.key_lengths);
  const A* add = ptr_or_null<A>(a.score_add);
  const A* mul = ptr_or_null<A>(a.score_mul);
  const A* lam = ptr_or_null<A>(a.lambda);
  A* lse[2] = {ptr_or_null<A>(a.lse), ptr_or_null<A>(a.lse2)};
  int32_t* rmin[2] = {ptr_or_null<int32_t>(a.row_min), ptr_or_null<int32_t>(a.row_min2)};
  A* rsum[2] = {ptr_or_null<A>(a.row_sum), ptr_or_null<A>(a.row_sum2)};
  const AttentionCaptures& c = a.captures;
  const int32_t* cap_rows = ptr_or_null<int32_t>(c.rows);
  A* cap_scores[2] = {ptr_or_null<A>(c.scores), ptr_or_null<A>(c.scores2)};
  A* cap_probs = ptr_or_null<A>(c.probs);
  A* ent = ptr_or_null<A>(c.entropy);
  A* kl = ptr_or_null<A>(c.kl);
  A* var = ptr_or_null<A>(c.variance);
  const int32_t* spans = ptr_or_null<int32_t>(c.spans);
  A* span_mass = ptr_or_null<A>(c.span_mass);
  const int64_t nspans = sh.nspans;
  const A inf = std::numeric_limits<A>::infinity();

#pragma omp parallel for schedule(static) if (sh.map_elems() > (1 << 16))
  for (int64_t r = 0; r < sh.rows(); ++r) {
    const int64_t b = r / (sh.Hq * T_), h = (r / T_) % sh.Hq, t = r % T_;
    const int64_t n = attn_visible_keys(S, klen, b, s.causal, t, sh.offset);
    AttnRowCtrl<A> ctrl;
    if (mul) ctrl.tau = mul[r];
    if (add) ctrl.add = add[r];
    const A lambda = diff ? lam[a.lambda.dim(0) == 1 ? 0 : h] : A(0);
    const int64_t slot = cap_rows ? capture_slot(cap_rows, sh.nrows_capture, t) : -1;
    const int64_t cap_off = ((b * sh.Hq + h) * sh.nrows_capture + slot) * S;

    AttnRowNorm<A> norm[2];
    A lse_raw = 0;
    for (int m = 0; m < nmaps; ++m) {
      const T* row = maps[m] + r * S;
      if (slot >= 0 && cap_scores[m])
        for (int64_t j = 0; j < S; ++j) cap_scores[m][cap_off + j] = ctrl.apply(A(row[j]));
      A mx = -inf, mn = inf, mxr = -inf;
      int64_t imin = -1;
      for (int64_t j = 0; j < n; ++j) {
        A x = ctrl.apply(A(row[j]));
        mx = std::max(mx, x);
        if (x < mn) mn = x, imin = j;
        mxr = std::max(mxr, A(row[j]));
      }
      // Without controllers x is the raw score, so the raw softmax's sum is se itself (the same
      // terms in the same order) whenever se is formed.
      const bool raw_is_x = !add && !mul && attn_needs_max(mode);
      A se = 0, z = 0, ser = 0;
      for (int64_t j = 0; j < n; ++j) {
        A x = ctrl.apply(A(row[j]));
        if (attn_needs_max(mode)) se += attn_exp(x - mx);
        if (attn_needs_min(mode)) z += x - mn + A(1);
        if (kl && m == 0 && !raw_is_x) ser += attn_exp(A(row[j]) - mxr);
      }
      if (raw_is_x) ser = se;
      norm[m] = attn_make_norm<A>(mode, A(s.ramp_alpha), n, mx, se, mn, z);
      if (lse[m]) lse[m][r] = norm[m].lse;
      if (rmin[m]) rmin[m][r] = int32_t(imin);
      if (rsum[m]) rsum[m][r] = n > 0 ? z : A(0);
      if (m == 0 && n > 0 && kl) lse_raw = mxr + attn_log(ser);
    }

    const bool normalised = s.norm != AttnNorm::relaxed_linear;
    const bool softmax_plain = !diff && !add && !mul && mode == int(AttnNorm::softmax);
    const A centre = n > 0 && normalised ? (A(1) - lambda) / A(n) : A(0);
    A s_ent = 0, s_kl = 0, s1 = 0, s2 = 0;
    for (int64_t k = 0; span_mass && k < nspans; ++k) span_mass[r * nspans + k] = 0;
    for (int64_t j = 0; j < S; ++j) {
      A p = 0;
      if (j < n) {
        A raw1 = A(maps[0][r * S + j]);
        A x1 = ctrl.apply(raw1);
        A p1 = norm[0].prob(x1);
        maps[0][r * S + j] = T(p1);
        p = p1;
        if (diff) {
          A p2 = norm[1].prob(ctrl.apply(A(maps[1][r * S + j])));
          maps[1][r * S + j] = T(p2);
          p = p1 - lambda * p2;
          pcomb[r * S + j] = T(p);
        }
        if (ent || kl) {
          A logp = norm[0].log_prob(x1, p1);
          s_ent += attn_entropy_term(p, logp);
          // Softmax without controllers: P is the raw softmax, every term is p·(logp − logp) = 0.
          if (kl) s_kl += softmax_plain ? A(0) : attn_kl_term(raw1, lse_raw, logp);
        }
        s1 += p - centre;
        s2 += (p - centre) * (p - centre);
        for (int64_t k = 0; span_mass && k < nspans; ++k)
          if (j >= spans[2 * k] && j < spans[2 * k + 1]) span_mass[r * nspans + k] += p;
      } else {
        for (int m = 0; m < nmaps; ++m) maps[m][r * S + j] = T(0);
        if (diff) pcomb[r * S + j] = T(0);
      }
      if (slot >= 0 && cap_probs) cap_probs[cap_off + j] = p;
    }
    if (ent) ent[r] = s_ent;
    if (kl) kl[r] = s_kl;
    if (var) var[r] = attn_variance(s1, s2, n);
  }

  const T* vptr = a.v.ptr<T>();
  if (s.dropout > 0) {
    // Dropout runs only with caller-kept maps (training): no maps in the workspace.
    const AttnWorkspace lay = attention_workspace_layout(s, sh, a.q.dtype, false, a.score_mul.defined(), false);
    T* dropped = reinterpret_cast<T*>(static_cast<char*>(a.workspace.data) + lay.dropped_off);
    attention_drop_map(ctx, s, sh, a.q.dtype, dropped, pcomb, a.dropout_offset);
    pcomb = dropped;
  }
  gemm_groups<T>(sh, false, false, GT, sh.dv, S, 1.0, pcomb, S, GT * S, vptr, sh.dv, sh.S_cap * sh.dv,
                 a.out.ptr<T>(), sh.dv, GT * sh.dv);
}

template <class T>
void backward_impl(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh) {
  using A = acc_t<T>;
  const AttentionSpec& s = a.spec;
  const bool diff = s.differential;
  const int nmaps = diff ? 2 : 1;
  const int mode = int(s.norm);
  const int64_t S = sh.S, T_ = sh.T, GT = sh.G * sh.T;
  const bool need_scores = attention_backward_needs_scores(s, a.score_mul.defined());
  const AttnWorkspace lay = attention_workspace_layout(s, sh, a.q.dtype, true, a.score_mul.defined());
  char* ws = static_cast<char*>(a.workspace.data);
  T* dp = reinterpret_cast<T*>(ws);                               // dP, then dSc1 in place
  T* x1 = lay.nmaps > 1 ? reinterpret_cast<T*>(ws + lay.map_bytes) : nullptr;      // Sc1, then P
  T* x2 = lay.nmaps > 2 ? reinterpret_cast<T*>(ws + 2 * lay.map_bytes) : nullptr;  // Sc2, then dSc2
  A* partials = diff ? reinterpret_cast<A*>(ws + lay.partials_off) : nullptr;

  gemm_groups<T>(sh, false, true, GT, S, sh.dv, 1.0, a.dout.ptr<T>(), sh.dv, GT * sh.dv, a.v.ptr<T>(),
                 sh.dv, sh.S_cap * sh.dv, dp, S, GT * S);
  if (s.dropout > 0) attention_drop_map(ctx, s, sh, a.q.dtype, dp, dp, a.dropout_offset);  // dP = mask ⊙ dP_drop / (1 − p)
  const Tensor* qs[2] = {&a.q, &a.q2};
  const Tensor* ks[2] = {&a.k, &a.k2};
  T* scores[2] = {need_scores ? x1 : nullptr, need_scores && diff ? x2 : nullptr};
  for (int m = 0; m < nmaps; ++m)
    if (scores[m])
      gemm_groups<T>(sh, false, true, GT, S, sh.d, sh.scale, qs[m]->ptr<T>(), sh.d, GT * sh.d,
                     ks[m]->ptr<T>(), sh.d, sh.S_cap * sh.d, scores[m], S, GT * S);

  const T* probs[2] = {a.probs.ptr<T>(), diff ? a.probs2.ptr<T>() : nullptr};
  T* dsc[2] = {dp, x2};
  T* pcomb = diff ? x1 : nullptr;
  const int32_t* klen = ptr_or_null<int32_t>(a.key_lengths);
  const A* add = ptr_or_null<A>(a.score_add);
  const A* mul = ptr_or_null<A>(a.score_mul);
  const A* lam = ptr_or_null<A>(a.lambda);
  const A* lse[2] = {ptr_or_null<A>(a.lse), ptr_or_null<A>(a.lse2)};
  const int32_t* rmin[2] = {ptr_or_null<int32_t>(a.row_min), ptr_or_null<int32_t>(a.row_min2)};
  const A* rsum[2] = {ptr_or_null<A>(a.row_sum), ptr_or_null<A>(a.row_sum2)};
  A* dadd = ptr_or_null<A>(a.dscore_add);
  A* dmul = ptr_or_null<A>(a.dscore_mul);

#pragma omp parallel for schedule(static) if (sh.map_elems() > (1 << 16))
  for (int64_t r = 0; r < sh.rows(); ++r) {
    const int64_t b = r / (sh.Hq * T_), h = (r / T_) % sh.Hq, t = r % T_;
    const int64_t n = attn_visible_keys(S, klen, b, s.causal, t, sh.offset);
    AttnRowCtrl<A> ctrl;
    if (mul) ctrl.tau = mul[r];
    if (add) ctrl.add = add[r];
    const A lambda = diff ? lam[a.lambda.dim(0) == 1 ? 0 : h] : A(0);
    const A gscale[2] = {A(1), -lambda};
    AttnRowGrad<A> grad[2];
    A dlam = 0;
    for (int m = 0; m < nmaps; ++m) {
      AttnRowGrad<A>& g = grad[m];
      g.n = n;
      g.norm.mode = mode;
      g.norm.alpha = A(s.ramp_alpha);
      if (n == 0) continue;
      if (attn_needs_max(mode)) g.norm.lse = lse[m][r];
      if (attn_needs_min(mode)) {
        g.imin = rmin[m][r];
        g.norm.inv_z = A(1) / rsum[m][r];
        if (scores[m]) g.norm.mn = ctrl.apply(A(scores[m][r * S + g.imin]));
      }
      for (int64_t j = 0; j < n; ++j) {
        const A gj = gscale[m] * A(dp[r * S + j]);
        if (mode == int(AttnNorm::ramp)) {
          const A x = ctrl.apply(A(scores[m][r * S + j]));
          g.dot += gj * g.norm.softmax_p(x);
          g.dot_lin += gj * g.norm.linear_p(x);
        } else {
          g.dot += gj * A(probs[m][r * S + j]);
          if (mode == int(AttnNorm::softmax)) g.dot_lin += A(probs[m][r * S + j]);
        }
        g.sum_g += gj;
        if (m == 1) dlam -= A(dp[r * S + j]) * A(probs[1][r * S + j]);
      }
      g.finish();
    }
    A s_dmul = 0, s_dadd = 0;
    for (int64_t j = 0; j < S; ++j) {
      if (j >= n) {
        for (int m = 0; m < nmaps; ++m) dsc[m][r * S + j] = T(0);
        if (diff) pcomb[r * S + j] = T(0);
        continue;
      }
      const A dpj = A(dp[r * S + j]);
      for (int m = 0; m < nmaps; ++m) {
        const A raw = scores[m] ? A(scores[m][r * S + j]) : A(0);
        const A dx = grad[m].dx(j, gscale[m] * dpj, A(probs[m][r * S + j]), ctrl.apply(raw));
        s_dmul += dx * raw;
        s_dadd += dx;
        dsc[m][r * S + j] = T(dx * ctrl.tau);
      }
      if (diff) pcomb[r * S + j] = T(A(probs[0][r * S + j]) - lambda * A(probs[1][r * S + j]));
    }
    if (dadd) dadd[r] = s_dadd;
    if (dmul) dmul[r] = s_dmul;
    if (partials) partials[r] = dlam;
  }

  const T* p_for_dv = diff ? pcomb : probs[0];
  if (s.dropout > 0 && a.dv.defined()) {
    T* dropped = reinterpret_cast<T*>(ws + lay.dropped_off);
    attention_drop_map(ctx, s, sh, a.q.dtype, dropped, p_for_dv, a.dropout_offset);
    p_for_dv = dropped;
  }
  T* dqs[2] = {a.dq.defined() ? a.dq.ptr<T>() : nullptr, a.dq2.defined() ? a.dq2.ptr<T>() : nullptr};
  T* dks[2] = {a.dk.defined() ? a.dk.ptr<T>() : nullptr, a.dk2.defined() ? a.dk2.ptr<T>() : nullptr};
  for (int m = 0; m < nmaps; ++m) {
    if (dqs[m])
      gemm_groups<T>(sh, false, false, GT, sh.d, S, sh.scale, dsc[m], S, GT * S, ks[m]->ptr<T>(), sh.d,
                     sh.S_cap * sh.d, dqs[m], sh.d, GT * sh.d);
    if (dks[m]) {
      gemm_groups<T>(sh, true, false, S, sh.d, GT, sh.scale, dsc[m], S, GT * S, qs[m]->ptr<T>(), sh.d,
                     GT * sh.d, dks[m], sh.d, sh.S_cap * sh.d);
      zero_tail_rows(sh, dks[m], sh.d);
    }
  }
  if (a.dv.defined()) {
    T* dv = a.dv.ptr<T>();
    gemm_groups<T>(sh, true, false, S, sh.dv, GT, 1.0, p_for_dv, S, GT * S, a.dout.ptr<T>(), sh.dv,
                   GT * sh.dv, dv, sh.dv, sh.S_cap * sh.dv);
    zero_tail_rows(sh, dv, sh.dv);
  }
  if (a.dlambda.defined()) {
    A* dl = a.dlambda.ptr<A>();
    const int64_t nl = a.dlambda.dim(0);
    for (int64_t i = 0; i < nl; ++i) dl[i] = 0;
    for (int64_t r = 0; r < sh.rows(); ++r) dl[nl == 1 ? 0 : (r / T_) % sh.Hq] += partials[r];
  }
}

}  // namespace

void attention_forward(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh) {
  dispatch_cpu_float(a.q.dtype, "attention_forward", [&](auto t) { forward_impl<decltype(t)>(ctx, a, sh); });
}
void attention_backward(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh) {
  dispatch_cpu_float(a.q.dtype, "attention_backward", [&](auto t) { backward_impl<decltype(t)>(ctx, a, sh); });
}

}  // namespace attnlab::cpu
