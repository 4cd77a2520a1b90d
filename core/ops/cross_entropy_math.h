#pragma once
// Per-row arithmetic of the cross-entropy shared by the CPU loops and the CUDA kernels.
#include <math.h>

#include <cstdint>

#include "core/hd.h"

namespace attnlab {

inline constexpr int32_t kIgnoreIndex = -100;

ATTNLAB_HD float ce_exp(float x) { return expf(x); }
ATTNLAB_HD double ce_exp(double x) { return exp(x); }
ATTNLAB_HD float ce_log(float x) { return logf(x); }
ATTNLAB_HD double ce_log(double x) { return log(x); }

// max that lets a NaN from either side through (fmax drops NaN, which would hide a bad logit
// from the trainer's NaN guard).
template <class A>
ATTNLAB_HD A nan_max(A a, A b) { return (a > b || a != a) ? a : b; }

// Running state of an online log-sum-exp: the largest value seen and Σ exp(x − max).
// States of disjoint pieces of a row merge exactly, in any grouping, which is what lets a row be
// split over CPU chunks, GPU threads and GPU blocks.
template <class A>
struct LseState {
  A max;
  A sum;
};

template <class A>
ATTNLAB_HD LseState<A> lse_empty() { return {-A(INFINITY), A(0)}; }

template <class A>
ATTNLAB_HD LseState<A> lse_merge(LseState<A> a, LseState<A> b) {
  const A m = nan_max(a.max, b.max);
  if (m == -A(INFINITY)) return {m, A(0)};  // both empty (or all −inf): avoid −inf − (−inf)
  return {m, a.sum * ce_exp(a.max - m) + b.sum * ce_exp(b.max - m)};
}

// log Σ exp(x) of a finished state.
template <class A>
ATTNLAB_HD A lse_value(LseState<A> s) { return s.max + ce_log(s.sum); }

// −log softmax(x)[target]. Written as (max − x_t) + log(sum) rather than lse − x_t: with logits
// near 1e4 the fp32 lse carries an absolute error of ~1e-3, and the subtraction of two nearly
// equal large numbers would pass it on to a loss of order 1; (max − x_t) is exact.
template <class A>
ATTNLAB_HD A ce_row_loss(LseState<A> s, A target_logit) {
  return (s.max - target_logit) + ce_log(s.sum);
}

// One element of dlogits: (softmax − onehot)·scale, softmax recomputed from the saved lse.
template <class A>
ATTNLAB_HD A ce_dlogit(A x, A lse, bool is_target, A scale) {
  return (ce_exp(x - lse) - (is_target ? A(1) : A(0))) * scale;
}

}  // namespace attnlab
