#pragma once
// Per-row arithmetic of the streaming LM-head entropy (METHODS P11), shared by the CPU loops and
// the CUDA kernels. `A` is float (f32/bf16 inputs) or double (f64 on the CPU).
#include "core/ops/cross_entropy_math.h"

namespace attnlab {

// Running state of a row: max m, S = Σ exp(z − m), W = Σ exp(z − m)·(z − m). States of disjoint
// pieces of a row merge exactly in any grouping (CPU tiles, GPU threads, warps, tiles).
template <class A>
struct EntState {
  A max, sum, wsum;
};

template <class A>
ATTNLAB_HD EntState<A> ent_empty() {
  return {-A(INFINITY), A(0), A(0)};
}

// Rescaling a state from max m to m' ≥ m: S' = S·e^{m−m'}, W' = e^{m−m'}(W + (m − m')·S).
template <class A>
ATTNLAB_HD EntState<A> ent_merge(EntState<A> a, EntState<A> b) {
  if (a.max == -A(INFINITY)) return b;  // an empty side: also avoids (−inf)·0 below
  if (b.max == -A(INFINITY)) return a;
  const A m = nan_max(a.max, b.max);
  const A da = a.max - m, db = b.max - m;
  const A ea = ce_exp(da), eb = ce_exp(db);
  return {m, a.sum * ea + b.sum * eb, ea * (a.wsum + da * a.sum) + eb * (b.wsum + db * b.sum)};
}

// Adds one logit. The common case (no new maximum) costs one exp; a NaN logit takes the merge
// path, where nan_max lets it reach the result.
template <class A>
ATTNLAB_HD EntState<A> ent_push(EntState<A> s, A z) {
  if (z <= s.max) {
    const A d = z - s.max, e = ce_exp(d);
    s.sum += e;
    s.wsum += e * d;
    return s;
  }
  return ent_merge(s, EntState<A>{z, A(1), A(0)});
}

template <class A>
ATTNLAB_HD A ent_lse(EntState<A> s) {
  return s.max + ce_log(s.sum);
}

// −Σ p log p = log S − W/S (with p = exp(z − m)/S); the `one_pass` entropy.
template <class A>
ATTNLAB_HD A ent_plain(EntState<A> s) {
  return ce_log(s.sum) - s.wsum / s.sum;
}

// One term of the second pass: p·log(p + ε) with p = exp(z − lse).
template <class A>
ATTNLAB_HD A ent_term(A z, A lse, A eps) {
  const A p = ce_exp(z - lse);
  return p * ce_log(p + eps);
}

}  // namespace attnlab
