#pragma once
// Tiled attention: the CPU reference of the fused (flash-style) kernels of DESIGN.md §5, for
// every variant of the materialized op (core/ops/attention.h) with the same semantics, but with
// no T×S map anywhere. It is the executable specification a CUDA fused kernel mirrors: the loops
// are the kernel's tiles (Br query rows × Bc keys), the per-row state is what a kernel keeps in
// registers, and the saved tensors are exactly what such a kernel writes.
//
// Forward (one query tile at a time, key tiles in order). Per row and map, with x = Sc·τ + a and
// u = x − K (K = x of key 0, the row's first visible key: it only improves conditioning), every
// map is a combination of three per-key basis functions whose coefficients are known only after
// the last key tile:
//   e = exp(x − M)  (M the running max; every sum holding e is rescaled by exp(M_old − M_new))
//   u = x − K,  1
//   softmax P = e / ℓ with ℓ = Σ e;  linear P = (u − (m − K − 1)) / Z with m the running min,
//   Z = Σ u − (m − K − 1)·n (METHODS §4.4 in one pass: no rescaling, the shift is a row constant);
//   ramp = α·linear + (1 − α)·softmax;  relaxed_linear P = u + K;  differential: A1 − λ·A2, the
//   two maps share the V tile (one pass over V).
// The row accumulates Σ φ·v (vectors), Σ φ (scalars), and only when a capture asks for them the
// Gram sums Σ φ·φ' (variance = (ΣP² − (ΣP)²/n)/(n − 1)), span sums Σ_span φ (span mass) and, for
// softmax, the raw-score softmax (KL). Softmax entropy is lse − E[x], from Σ e·u.
// Linear and ramp entropy/KL need log(x − m + 1) with the final m: a log does not factor out of
// a moving shift as exp does, so those rows take a second, score-only pass (Q·Kᵀ recomputed, no
// V) once m and Z are final. Captured rows' probabilities need the final constants too, and their
// scores include masked keys the main pass skips: they take the same second pass, for the chosen
// rows only.
//
// Saved (what the backward needs): lse (softmax, ramp), row_min = first index of the minimum and
// row_sum = Z (linear, ramp), per map — the materialized op's statistics, bit for bit the same
// meaning; the backward recomputes m = x at row_min. Ramp and differential rows also save the
// un-mixed outputs (`out_parts`), since the FlashAttention-2 Δ = dO·O splits into one Δ per part.
//
// Backward (FlashAttention-2 order, deterministic): a row pass computes per map and part
// Δ = g_scale·dO·O_part, Σ_j g_j = g_scale·dO·Σ_{j<n} v_j (visible keys are a prefix: one
// prefix sum of V per kv head on a GPU) and from them the linear argmin correction; then per
// (batch, kv head) the key tiles in order, inside them the query tiles in order: recompute the
// scores, P and dP = dO·Vᵀ, dx from AttnRowGrad (attention_math.h, the materialized op's row
// arithmetic), dV += Pᵀ·dO, dK += dSᵀ·Q, dQ_acc += dx·s·K (acc, unscaled by τ); a final row pass
// writes dQ = τ·dQ_acc, dτ = Σ_maps q·dQ_acc (= Σ_j dx_j·Sc_j), dλ = −dO·O_A2, da = Σ_j dx_j
// (0 for every normalising map, (1 − λ)·Σ_j g_j for relaxed_linear).
#include <cstddef>

#include "core/ops/attention.h"

namespace attnlab {

struct AttentionTiles {
  int64_t Br = 16;  // query rows per tile
  int64_t Bc = 16;  // keys per tile
};

// Un-mixed outputs saved by the forward for the backward's Δ terms: per map, one part per
// normalisation (ramp: softmax then linear; others: one). 1 means `out` itself is the only part.
int64_t attention_tiled_nparts(const AttentionSpec& s);

struct AttentionTiledArgs {
  AttentionArgs attn;     // as the materialized op; probs, probs2 and workspace must be undefined
  int64_t S = 0;          // visible key positions this call (the materialized op reads it from probs)
  AttentionTiles tiles;
  Tensor out_parts;       // out T [B, Hq, T, nparts·dv] when nparts > 1 (part p at p·dv); saved
};

struct AttentionTiledBackwardArgs {
  AttentionBackwardArgs attn;  // as the materialized op; probs and probs2 must be undefined
  int64_t S = 0;
  AttentionTiles tiles;
  Tensor out;        // in T [B, Hq, T, dv]: the forward's output (used when nparts == 1)
  Tensor out_parts;  // in T [B, Hq, T, nparts·dv] (when nparts > 1)
};

// Backward scratch (attn.workspace): per-row constants and the acc dQ accumulators.
size_t attention_tiled_workspace_bytes(const AttentionSpec& spec, int64_t B, int64_t T, DType dt);

// CPU (f32, f64): the reference loops. CUDA (f32, bf16): the fused kernels (cuda/attention_fused*.cu),
// for what attention_backend_support(fused, ..., cuda, ...) admits; the rest fails with its reason.
// On CUDA the backward's workspace is laid out as on the CPU (per-row constants, then unused room).
void attention_tiled_forward(Ctx& ctx, const AttentionTiledArgs& a);
void attention_tiled_backward(Ctx& ctx, const AttentionTiledBackwardArgs& a);

namespace cuda {
void attention_fused_forward(Ctx& ctx, const AttentionTiledArgs& a, const AttnShape& sh);
void attention_fused_backward(Ctx& ctx, const AttentionTiledBackwardArgs& a, const AttnShape& sh);
}  // namespace cuda

}  // namespace attnlab
