#pragma once
// Token embedding lookup with an optional learned position table (GPT-2 wte + wpe):
// out[i] = table[ids[i]] (+ pos[pos_offset + i % T]), ids i32 [B, T] (or [N]: T = N).
// Backward: dtable[id] += Σ_{i: ids[i] = id} dout[i] (except padding_idx, whose row never receives
// gradient), dpos[pos_offset + t] += Σ_b dout[b·T + t]. Gradients are acc dtype and accumulate.
//
// Out-of-range ids: the CPU throws (naming the id, its index and V). The GPU cannot throw without
// a host sync, so it CLAMPS ids to [0, V−1], in forward and backward alike (the gradient is the
// exact gradient of what forward computed), and never reads out of bounds. Data loaders validate
// ids against V on the host, where an error can still be reported.
//
// CUDA backward is deterministic (no float atomics; bitwise reproducible) and needs two scratch
// tensors, sized by embedding_backward_*_scratch(): see cuda/embedding.cu for the design
// (counting sort of token positions by id, warp-per-segment sums in position order, long
// segments split into sub-segments of 32 whose partial sums the last finisher adds in order).
#include <cstddef>

#include "core/ctx.h"

namespace attnlab {

struct EmbeddingArgs {
  Tensor out;              // [B, T, C] or [N, C] out, table's dtype
  Tensor ids;              // [B, T] or [N] in, i32
  Tensor table;            // [V, C] in
  Tensor pos;              // [P, C] in, table's dtype; undefined = no position table
  int64_t pos_offset = 0;  // first position row used (KV-cache decoding); pos_offset + T ≤ P
};

struct EmbeddingBackwardArgs {
  Tensor dtable;  // [V, C] acc dtype, accumulated (+=); undefined = table frozen
  Tensor dpos;    // [P, C] acc dtype, accumulated (+=); undefined = frozen or no position table
  Tensor dout;    // [B, T, C] or [N, C] in, the forward table's dtype
  Tensor ids;     // [B, T] or [N] in, i32: as given to forward
  int64_t pos_offset = 0;
  int64_t padding_idx = -1;  // id whose row never receives gradient; −1 = none
  // CUDA only, needed when dtable is defined (any device memory; contents on entry do not matter):
  Tensor index_scratch;    // i32 [≥ embedding_backward_index_scratch(N, V)]
  Tensor partial_scratch;  // f32 [≥ embedding_backward_partial_scratch(N, C)]
};

void embedding_forward(Ctx& ctx, const EmbeddingArgs& a);
void embedding_backward(Ctx& ctx, const EmbeddingBackwardArgs& a);

// Token positions of one id are summed in sub-segments of this many (bounds the serial work of a
// frequent id; see cuda/embedding.cu).
inline constexpr int kEmbeddingSubSegment = 32;

// Scratch sizes (elements) of the CUDA backward for N = B·T tokens, V ids, C columns.
size_t embedding_backward_index_scratch(int64_t N, int64_t V);
size_t embedding_backward_partial_scratch(int64_t N, int64_t C);

namespace cuda {
void embedding_forward(Ctx& ctx, const EmbeddingArgs& a);
void embedding_backward(Ctx& ctx, const EmbeddingBackwardArgs& a);
}  // namespace cuda

}  // namespace attnlab
