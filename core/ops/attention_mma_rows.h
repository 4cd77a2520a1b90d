#pragma once
// Per-row update rules of the tensor-core fused attention (cuda/attention_fused_mma_forward.cu),
// written once for the kernel and for the CPU test that replays them on random rows
// (tests/ops/attention_mma_rows_test.cpp). A row's scores arrive one key tile at a time, spread
// over the 4 lanes of a quad: each lane keeps its own partial sums, the running max / min is the
// quad's (reduced before the step), and these rules say how the sums move when it does.
//   softmax: e = exp(x − M) against the running max M; when M grows every sum holding e is
//            multiplied by exp(M_old − M_new). Before any visible key M = −inf and the weights are
//            taken against 0 (all of them 0), so no inf − inf arises.
//   linear:  w = x − m + 1 against the running min m (≥ 1: a well-conditioned bf16 operand); when
//            m drops by δ every sum of w gains δ per key already in it: Σ w·v += δ·Σ v and
//            Σ w += δ·count. Before any visible key m = +inf and nothing has been summed.
#include <cmath>

#include "core/hd.h"

namespace attnlab::mma {

constexpr float kLog2e = 1.4426950408889634f;

struct MaxStep {
  float m = 0;       // the new running max (−inf while nothing is visible)
  float base = 0;    // what this tile's exponentials are taken against
  float factor = 1;  // multiplies every sum of e gathered before this tile
};
ATTNLAB_HD MaxStep max_step(float m_old, float tile_max) {
  MaxStep s;
  s.m = fmaxf(m_old, tile_max);
  s.base = s.m == -INFINITY ? 0.f : s.m;
  s.factor = exp2f((m_old - s.base) * kLog2e);  // m_old = −inf: 0 (nothing to scale)
  return s;
}
ATTNLAB_HD float softmax_weight(float x, float base, bool visible) {
  return visible ? exp2f((x - base) * kLog2e) : 0.f;
}
// lse = M + log ℓ of a row with ℓ = Σ e (0 for a row with no visible key).
ATTNLAB_HD float softmax_lse(float m, float l, bool any) { return any ? m + logf(l) : 0.f; }

struct MinStep {
  float m = 0;      // the new running min (+inf while nothing is visible)
  float delta = 0;  // added per key already summed (0: nothing to shift)
};
ATTNLAB_HD MinStep min_step(float m_old, float tile_min) {
  MinStep s;
  s.m = fminf(m_old, tile_min);
  s.delta = s.m < m_old && m_old != INFINITY ? m_old - s.m : 0.f;
  return s;
}
ATTNLAB_HD float linear_weight(float x, float m, bool visible) { return visible ? x - m + 1.f : 0.f; }

}  // namespace attnlab::mma
