#pragma once
// Writes the keys or values of new tokens into a KV cache at explicit slots (generation,
// core/models/kv_cache.h):
//
//   cache[b, h, slots[b, t], :] = src[b, t, h, :]
//
// src is token-major [B, T, H, d], the layout a k/v projection (and RoPE in place) produces, so
// no separate permute is needed; the cache is heads-first [B, H, S_cap, d], the layout the
// attention op reads K and V in. Slots not named in `slots` keep their contents. Per-row slots let
// the sequences of one batch sit at different lengths (prompts of different lengths, right-padded):
// prefill passes slots[b, t] = t, a decode step slots[b, 0] = the row's current length.
//
// Slots of one row must be distinct (two tokens writing one slot would race on the GPU). A slot
// outside [0, S_cap): the CPU throws (naming the row, token and slot); the GPU cannot throw without
// a host sync and skips that token (its slot stays as it was). No backward: inference only.
#include "core/ctx.h"

namespace attnlab {

struct KvCacheWriteArgs {
  Tensor cache;  // [B, H, S_cap, d] in/out; only the addressed slots are written
  Tensor src;    // [B, T, H, d] in, the cache's dtype
  Tensor slots;  // [B, T] i32 in: cache slot of token t of row b, distinct within a row
};

void kv_cache_write_forward(Ctx& ctx, const KvCacheWriteArgs& a);

namespace cuda {
void kv_cache_write_forward(Ctx& ctx, const KvCacheWriteArgs& a);
}  // namespace cuda

}  // namespace attnlab
