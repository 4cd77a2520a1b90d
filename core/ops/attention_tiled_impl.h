#pragma once
// Internals shared by the tiled attention's dispatcher (attention_tiled.cpp) and its CPU forward
// and backward (attention_tiled_forward.cpp, attention_tiled_backward.cpp).
#include "core/ops/attention_math.h"
#include "core/ops/attention_tiled.h"

namespace attnlab::tiled {

// Fixed per-row inputs: indices, visible keys, controllers, λ.
template <class A>
struct TiledRow {
  int64_t b = 0, h = 0, t = 0, r = 0;  // r = (b·Hq + h)·T + t
  int64_t n = 0;                       // visible keys
  int64_t kv_base = 0;                 // (b·Hkv + h/G)·S_cap: row of key 0 in K, V
  AttnRowCtrl<A> ctrl;
  A lambda = 0;
};

template <class A>
TiledRow<A> make_row(const AttnShape& sh, const AttentionSpec& s, const int32_t* klen, const A* add,
                     const A* mul, const A* lam, int64_t nlam, int64_t r) {
  TiledRow<A> w;
  w.r = r;
  w.b = r / (sh.Hq * sh.T), w.h = (r / sh.T) % sh.Hq, w.t = r % sh.T;
  w.n = attn_visible_keys(sh.S, klen, w.b, s.causal, w.t, sh.offset);
  w.kv_base = (w.b * sh.Hkv + w.h / sh.G) * sh.S_cap;
  if (mul) w.ctrl.tau = mul[r];
  if (add) w.ctrl.add = add[r];
  if (s.differential) w.lambda = lam[nlam == 1 ? 0 : w.h];
  return w;
}

// Bytes of the backward's per-row constants and dQ accumulators (attention_tiled_workspace_bytes).
size_t backward_stats_bytes(const AttnShape& sh, int nmaps, DType dt);

void forward_cpu(const AttentionTiledArgs& a, const AttnShape& sh);
void backward_cpu(const AttentionTiledBackwardArgs& a, const AttnShape& sh);

}  // namespace attnlab::tiled
