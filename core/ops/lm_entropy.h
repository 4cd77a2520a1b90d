#pragma once
// Streaming entropy of the LM-head distribution of every row (METHODS §1.3 step 5-6, P11),
// forward only (no gradient flows through it):
//   z_t = x_t Eᵀ (fp32),  p_t = softmax(z_t) over the first V rows of E,
//   e_t = −Σ_v p_tv · log(p_tv + ε),  ε = 1e−9.
// The T×V logits are never stored: E is walked in vocabulary tiles of `tile` rows, each tile's
// logits go to a [T, tile] scratch (one GEMM), and a row kernel folds them into per-row state.
//
// Why two passes over the tiles (mode `exact`, the default): the ε inside the log makes the
// entropy a non-separable function of the final normaliser. Writing p_v = exp(z_v − lse),
//   −Σ p log(p + ε) = −Σ p log p − Σ p log(1 + ε/p),
// the first sum streams exactly (keep the running max m, S = Σ exp(z − m) and
// W = Σ exp(z − m)(z − m): it is log S − W/S), but the second needs each p_v itself, i.e. the
// final lse, and is not negligible at double precision: every v with p_v ≫ ε adds ≈ ε, every v
// with p_v ≪ ε adds p_v·log(ε/p_v); in total anywhere in [0, V·ε] (up to 1.5e−4 nats at V = 152k).
// No finite set of running sums reproduces it (its series in ε/p diverges wherever p < ε, which is
// most of a 152k vocabulary). So pass 1 computes lse = m + log S tile by tile, and pass 2
// recomputes each tile's logits and sums p log(p + ε) with the final lse: 2× the GEMM.
//
// Mode `one_pass` drops ε: e_t = −Σ p log p, exact in a single pass over the tiles (half the
// GEMM work). It exceeds the ε-entropy by Σ p log(1 + ε/p) ∈ [0, V·ε]; a CHOICE for runs that
// accept that difference (it is far below anything the gates can resolve).
//
// Padding: E may be [Vp, D] with only its first V = `vocab` rows real tokens (a padded
// embedding); rows [V, Vp) are never read.
//
// CUDA: the tile GEMM is the matmul op (cuBLASLt, bf16 or fp32 operands, fp32 logits) into the
// scratch, followed by one row-reduction kernel per tile: not a single fused kernel. The GEMM
// dominates (2·T·V·D FLOPs per pass); the scratch round trip is T·tile·8 bytes per tile.
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

inline constexpr double kLmEntropyEps = 1e-9;

enum class LmEntropyMode : uint8_t {
  exact,     // −Σ p log(p + ε): two passes over the vocabulary tiles (the GEMM runs twice)
  one_pass,  // −Σ p log p: one pass; larger than `exact` by at most V·ε
};
const char* lm_entropy_mode_name(LmEntropyMode m);

struct LmEntropyArgs {
  Tensor x;        // [T, D] in, dtype X: f32/f64 on the CPU, f32/bf16 on CUDA (leading dims allowed)
  Tensor emb;      // [Vp, D] in, dtype X: lm_head / tied embedding weight; rows >= vocab unused
  Tensor entropy;  // [T] out, acc dtype (f32 for f32/bf16, f64 for f64)
  // [T, tile] acc dtype, scratch: one tile of logits; its width `tile` (>= 1) sets the tile size.
  // Contents undefined on return. T·tile·4 bytes: e.g. 2048 × 8192 fp32 = 64 MiB.
  Tensor scratch;
  // [T, 3] acc dtype, out: per-row state. On return column 0 is max_v z, column 1 is
  // Σ_v exp(z − max) (so lse = c0 + log c1), column 2 the mode's running sum (exact: Σ p log(p+ε);
  // one_pass: Σ exp(z − max)(z − max)).
  Tensor state;
  int64_t vocab = 0;  // V: the first `vocab` rows of emb are tokens (1 ≤ V ≤ Vp); 0 = all Vp rows
  LmEntropyMode mode = LmEntropyMode::exact;
  bool allow_tf32 = false;  // fp32 operands on CUDA may use TF32 tensor cores (see MatmulArgs)
};

void lm_entropy_forward(Ctx& ctx, const LmEntropyArgs& a);

// Pass of a tile's row reduction (shared by the CPU and CUDA paths).
enum class LmEntropyPass : uint8_t { stats, weighted_log };

namespace cuda {
// Folds logits[:, 0:width] (row stride ld) into state; `first` initialises the state,
// `last` writes entropy. Expects validated arguments.
void lm_entropy_tile(Ctx& ctx, const LmEntropyArgs& a, int64_t rows, int64_t width, int64_t ld,
                     LmEntropyPass pass, bool first, bool last);
}  // namespace cuda

}  // namespace attnlab
