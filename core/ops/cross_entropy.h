#pragma once
// Fused softmax cross-entropy over large vocabularies (METHODS P10).
//
// Forward streams each row of logits once with an online log-sum-exp (running max and sum,
// merged across threads / blocks / CPU chunks), so no probability tensor is ever materialised.
// It writes the per-row loss and the per-row log-sum-exp, which backward reuses to form
// softmax − onehot without a second reduction. The mean over valid targets is a separate
// reduction whose denominator is given by the caller: the trainer normalises by the global
// count of target tokens over micro-batches and ranks, which no single call can know.
//
// Padded rows: logits may be [N, Vp] with only the first V = `vocab` columns being classes (the
// LM head pads the vocabulary to a multiple of 64 so every logits row is 128-byte aligned for
// cuBLASLt). Columns [V, Vp) are never read by forward; backward writes 0 there (so the padding
// rows of the head's weight get exactly zero gradient). vocab = 0 means every column (V = Vp).
//
// Targets: i32, `kIgnoreIndex` (−100) marks rows that contribute nothing (loss 0, gradient 0).
// Any other target outside [0, V) is an error. The CPU throws. The GPU cannot throw without a
// host sync, so it never reads out of bounds and instead writes NaN as that row's loss (and, in
// backward, a row of NaN gradients): the mean becomes NaN and the trainer's NaN guard fires.
//
// CUDA: with few rows (N < 2·SMs) forward splits each row over several blocks and merges their
// partial states in a second launch, using ctx.workspace as stream-ordered scratch.
#include "core/ctx.h"
#include "core/ops/cross_entropy_math.h"

namespace attnlab {

struct CrossEntropyArgs {
  Tensor logits;   // [N, Vp] in. f32/bf16 on CUDA, f32/f64 on the CPU. Vp need not be a multiple of anything.
  Tensor targets;  // [N] i32 in. Class index in [0, V), or kIgnoreIndex.
  Tensor loss;     // [N] acc dtype out: lse − logits[target]; 0 for ignored rows.
  Tensor lse;      // [N] acc dtype out: log Σ_{v<V} exp(logits[v]); saved for backward (written for every row).
  int64_t vocab = 0;  // V: classes are the first V columns (1 ≤ V ≤ Vp); 0 = all Vp columns
};

struct CrossEntropyBackwardArgs {
  Tensor logits;   // [N, Vp] in: the logits given to forward.
  Tensor targets;  // [N] i32 in.
  Tensor lse;      // [N] acc dtype in: saved by forward.
  // [N, Vp] out (overwritten), logits' dtype: (softmax − onehot)·dloss/valid_count for valid rows,
  // 0 for ignored rows and for the padding columns [V, Vp). May be the very same storage as
  // `logits` (the LM head reuses its logits buffer): every element is read before it is written,
  // by the same thread.
  Tensor dlogits;
  double dloss = 1.0;        // gradient of the scalar mean loss (1 for a plain backward)
  double valid_count = 0.0;  // denominator of the mean; must be > 0 (global count of targets)
  int64_t vocab = 0;         // V, as given to forward; 0 = all Vp columns
};

struct CrossEntropyMeanArgs {
  Tensor loss;               // [N] acc dtype in: per-row loss from forward (0 for ignored rows).
  Tensor out;                // [1] same dtype out: Σ loss / valid_count (added to `out` when accumulate).
  double valid_count = 0.0;  // must be > 0; the caller's count (may exceed this call's valid rows)
  bool accumulate = false;   // out += … (summing micro-batches on the device without a host sync)
};

void cross_entropy_forward(Ctx& ctx, const CrossEntropyArgs& a);
void cross_entropy_backward(Ctx& ctx, const CrossEntropyBackwardArgs& a);
void cross_entropy_mean(Ctx& ctx, const CrossEntropyMeanArgs& a);

// The number of classes V of a call: `vocab`, or every column when it is 0. Throws unless
// 0 ≤ vocab ≤ logits.dim(1).
int64_t cross_entropy_classes(const char* op, const Tensor& logits, int64_t vocab);

// Host helper for callers that hold targets on the host: rows whose target is not kIgnoreIndex.
int64_t count_valid_targets(const int32_t* targets, int64_t n);

namespace cuda {
void cross_entropy_forward(Ctx& ctx, const CrossEntropyArgs& a);
void cross_entropy_backward(Ctx& ctx, const CrossEntropyBackwardArgs& a);
void cross_entropy_mean(Ctx& ctx, const CrossEntropyMeanArgs& a);
}  // namespace cuda

}  // namespace attnlab
