#pragma once
// Per-element arithmetic of the score-controller op, shared by the CPU loop and the CUDA kernel.
#include "core/hd.h"
#include "core/ops/hd_math.h"

namespace attnlab {

// a = tanh(z); additive: a, multiplicative: exp(a).
template <class A>
ATTNLAB_HD A controller_value(A z, bool multiplicative) {
  const A a = hd_tanh(z);
  return multiplicative ? hd_exp(a) : a;
}

// dz from d(out): additive dout·(1 − a²); multiplicative dout·exp(a)·(1 − a²).
template <class A>
ATTNLAB_HD A controller_grad(A z, A dout, bool multiplicative) {
  const A a = hd_tanh(z);
  const A g = dout * (A(1) - a * a);
  return multiplicative ? g * hd_exp(a) : g;
}

}  // namespace attnlab
