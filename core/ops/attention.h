#pragma once
// Materialized attention: one op for every variant of DESIGN.md §5, described by an
// AttentionSpec. Scores and every backward product are strided-batched GEMMs (cuBLAS on CUDA,
// OpenBLAS on the CPU); mask, score controllers, normalisation, the differential combination,
// captures and their backward run in row kernels (one row = one (b, query head, query t)).
//
// Per row, with x_j = Sc_j·τ + a the controlled score of key j (Sc = scale·q·k_j):
//   visible keys are the prefix j < n, n = min(S, key_lengths[b], causal ? t + offset + 1 : S);
//   softmax         P_j = exp(x_j − lse)                           (METHODS P6, fp32)
//   linear          P_j = (x_j − m + 1) / Z, m = min x, Z = Σ (x − m + 1)   (METHODS §4.4)
//   ramp(α)         P = α·P_linear + (1 − α)·P_softmax                      (METHODS §4.5)
//   relaxed_linear  P_j = x_j (no normalisation: LinearAttn of METHODS §2.2)
//   masked keys (j ≥ n) get P_j = 0 exactly; a row with n = 0 is all zeros (output 0, no NaN).
// O = P·V; differential: A1, A2 from (Q, K) and (Q2, K2), P = A1 − λ_h·A2, O = P·V (one GEMM).
//
// Layout (row-major, contiguous): Q [B, Hq, T, d], K [B, Hkv, S_cap, d], V [B, Hkv, S_cap, dv],
// O [B, Hq, T, dv], maps [B, Hq, T, S]. S (key positions this call, AttentionInputs::keys) is the
// last dim of the probability map; S ≤ S_cap (KV-cache capacity, used only for strides). GQA groups are
// contiguous (METHODS P5): query head h uses kv head h / (Hq / Hkv).
//
// Dtypes: Q, K, V, O, maps, dQ/dK/dV/dQ2/dK2 and the workspace are the compute dtype T (CPU:
// f32, f64; CUDA: f32, bf16). Row statistics, controllers, λ, captures and their gradients are
// acc_t<T> (f32 for f32/bf16, f64 for f64); min indices and key lengths are i32. In bf16 the
// score GEMM writes bf16 scores (as HF eager attention does) and the row kernel overwrites them
// with P in place, with fp32 arithmetic inside.
//
// Nothing is allocated: the caller passes a workspace of at least attention_workspace_bytes().
#include <cstddef>
#include <string>

#include "core/ctx.h"

namespace attnlab {

enum class AttnNorm : uint8_t { softmax, linear, ramp, relaxed_linear };
const char* attn_norm_name(AttnNorm n);

struct AttentionSpec {
  int64_t Hq = 0;             // query heads
  int64_t Hkv = 0;            // key/value heads; Hq % Hkv == 0
  int64_t d = 0;              // query/key head dim
  int64_t dv = 0;             // value head dim (0: d; 2d for the paper's differential layer)
  double scale = 0;           // score scale s (0: d^-1/2)
  bool causal = true;         // key j visible to query t iff j ≤ t + query_offset
  AttnNorm norm = AttnNorm::softmax;
  double ramp_alpha = 0.5;    // α of ramp, in [0, 1]
  bool differential = false;  // two maps and λ (METHODS §3.2/§3.3)
  // Attention-probability dropout (GPT-2's attn_pdrop, training only): O = (P ⊙ mask / (1 − p)) V with
  // the mask of the dropout op (core/ops/dropout.h) over the [B, Hq, T, S] map, element i kept iff
  // philox_uniform(ctx.seed, AttentionInputs::dropout_offset, i) ≥ p, so the backward regenerates it
  // and the CPU and the GPU drop the same entries. The saved map stays the undropped P; the backward
  // uses P ⊙ mask / (1 − p) for dV and dP = mask ⊙ d(P_drop) / (1 − p). 0: off. In [0, 1).
  double dropout = 0;

  int64_t value_dim() const { return dv > 0 ? dv : d; }
  double score_scale() const;
};

// Captures computed by the forward row kernel; every undefined tensor costs nothing.
struct AttentionCaptures {
  Tensor rows;          // in  i32 [nrows]  query indices t to capture (an out-of-range index leaves its slot untouched)
  Tensor scores;        // out acc [B, Hq, nrows, S]  x = Sc·τ + a of those rows, before the mask
  Tensor scores2;       // out acc [B, Hq, nrows, S]  same for the second map (differential)
  Tensor probs;         // out acc [B, Hq, nrows, S]  final P of those rows (A1 − λA2 if differential)
  Tensor entropy;       // out acc [B, Hq, T]  −Σ P log P over visible keys (0·log 0 = 0)
  Tensor kl;            // out acc [B, Hq, T]  KL(softmax(Sc) ‖ P), Sc before controllers,
                        //                     visible keys, terms with softmax(Sc)_j = 0 are 0
  Tensor variance;      // out acc [B, Hq, T]  unbiased variance of P over the n visible keys (n−1)
  Tensor spans;         // in  i32 [nspans, 2] key spans [begin, end) for span_mass
  Tensor span_mass;     // out acc [B, Hq, T, nspans]  Σ P over span ∩ visible keys
  // entropy and kl need a distribution: they are rejected for differential and relaxed_linear.
  // Fully masked rows report 0 for every statistic; n = 1 gives variance 0.
};

// The backend that runs the op. `materialized` keeps [B, Hq, T, S] maps; `fused` (flash-style,
// issue 19) keeps only row statistics: on the CPU it is the tiled reference
// (core/ops/attention_tiled.h), on CUDA the kernels of cuda/attention_fused*.cu, which mirror it.
// attention_backend_support() is the support matrix: which spec, dtype and device each backend runs.
enum class AttentionBackend : uint8_t { materialized, fused };
const char* attention_backend_name(AttentionBackend b);
// Empty when `backend` runs this spec on this device and dtype, else the reason it does not.
// fused: every spec on the CPU (f32, f64); on CUDA (f32, bf16) head dims d ∈ {64, 128} with
// dv ∈ {d, 2d}, every normalisation but relaxed_linear. Per-call limits the spec cannot show
// (at most kAttentionFusedMaxSpans captured spans on CUDA) are refused by the op with a message.
std::string attention_backend_support(AttentionBackend backend, const AttentionSpec& spec, Device device,
                                      DType dt);
constexpr int64_t kAttentionFusedMaxSpans = 32;

// The user's choice (model.attention.impl): auto takes fused where the support matrix allows on
// CUDA and materialized elsewhere (on the CPU the fused backend is the scalar reference, not a
// fast path, and analyses read the materialized maps); fused and materialized are taken as asked,
// and a fused request the matrix refuses fails with the matrix's reason.
// Until the fused CUDA kernels have passed tools/gpu/fused_pass.sh on a GPU, auto keeps the
// materialized kernels on CUDA too (kAttentionFusedCudaVerified; flip it with the H100 result).
enum class AttentionImpl : uint8_t { automatic, materialized, fused };
constexpr bool kAttentionFusedCudaVerified = false;
// "auto" | "materialized" | "fused"; anything else fails naming the choices.
AttentionImpl attention_impl_from_name(const std::string& name);
AttentionBackend attention_backend_for(AttentionImpl impl, const AttentionSpec& spec, Device device, DType dt,
                                       bool fused_cuda_verified = kAttentionFusedCudaVerified);
// Un-mixed outputs the fused forward saves for its backward: per map one part per normalisation
// (ramp: softmax then linear). 1: `out` itself is the only part (no out_parts tensor).
int64_t attention_fused_nparts(const AttentionSpec& s);

// What every pass reads. The backward's arguments extend the forward's (FlashAttention's habit):
// one list of inputs, not two copies of it.
struct AttentionInputs {
  AttentionSpec spec;
  AttentionBackend backend = AttentionBackend::materialized;
  int64_t keys = 0;    // S: key positions this call attends over (≤ S_cap = k.dim(2)); 0: the
                       //    given probability map's last dim, or S_cap without a map
  Tensor q;            // in  T [B, Hq, T, d]
  Tensor k;            // in  T [B, Hkv, S_cap, d]
  Tensor v;            // in  T [B, Hkv, S_cap, dv]
  Tensor q2;           // in  T [B, Hq, T, d]       differential only
  Tensor k2;           // in  T [B, Hkv, S_cap, d]  differential only
  Tensor lambda;       // in  acc [1] (per layer) or [Hq] (per head)  differential only
  Tensor key_lengths;  // in  i32 [B] visible keys per sequence (right padding); undefined: all S
  int64_t query_offset = -1;  // query t is position t + offset among the keys; -1: S − T
  Tensor score_add;    // in  acc [B, Hq, T] per-row additive controller a (METHODS §4.3); optional
  Tensor score_mul;    // in  acc [B, Hq, T] per-row multiplicative controller τ; optional
  uint64_t dropout_offset = 0;  // spec.dropout > 0: the first Philox counter, ctx.take_rng(B·Hq·T·S),
                                // the same in the forward and its backward
};

// What the forward saves for the backward (outputs of the forward, inputs of the backward).
struct AttentionSaved {
  // T [B, Hq, T, S] P (differential: A1, and A2 in probs2). The materialized backward reads them;
  // a forward that is not followed by a backward may leave them undefined: the maps then live in
  // the workspace (size it with maps_in_workspace = true).
  Tensor probs, probs2;
  Tensor lse;          // acc [B, Hq, T] log Σ exp x (softmax, ramp)
  Tensor row_min;      // i32 [B, Hq, T] first index of min x (linear, ramp; −1 if n = 0)
  Tensor row_sum;      // acc [B, Hq, T] Z = Σ (x − m + 1) (linear, ramp; 0 if n = 0)
  Tensor lse2, row_min2, row_sum2;  // the same for A2 (differential)
  // fused backend, attention_fused_nparts > 1 (ramp, differential): T [B, Hq, T, nparts·dv], the
  // un-mixed outputs (map m, part k at (m·nparts/nmaps + k)·dv); the fused backward's Δ terms.
  Tensor out_parts;
};

struct AttentionArgs : AttentionInputs, AttentionSaved {
  Tensor out;          // out T [B, Hq, T, dv]
  Tensor workspace;    // scratch, any dtype, ≥ attention_workspace_bytes(..., backward=false, ...)
  AttentionCaptures captures;
};

// dQ, dK, dV, dQ2, dK2 (T) and dscore_add, dscore_mul, dlambda (acc) are overwritten; an
// undefined gradient tensor skips its work. dK/dK2/dV rows in [S, S_cap) are set to 0.
struct AttentionBackwardArgs : AttentionInputs, AttentionSaved {
  Tensor dout;         // in  T [B, Hq, T, dv]
  Tensor dq;           // out T [B, Hq, T, d]
  Tensor dk;           // out T [B, Hkv, S_cap, d]
  Tensor dv;           // out T [B, Hkv, S_cap, dv]
  Tensor dq2;          // out T [B, Hq, T, d]       differential
  Tensor dk2;          // out T [B, Hkv, S_cap, d]  differential
  Tensor dlambda;      // out acc, same shape as lambda: −Σ dP ⊙ A2 over the head's rows
                       //     (size 1: summed over every head)
  Tensor dscore_add;   // out acc [B, Hq, T]  Σ_j dx_j
  Tensor dscore_mul;   // out acc [B, Hq, T]  Σ_j dx_j · Sc_j
  Tensor workspace;    // scratch, any dtype, ≥ attention_workspace_bytes(..., backward=true)
  Tensor out;          // in  T [B, Hq, T, dv]  the forward's output (fused backend, nparts == 1)
};

// Bytes of scratch the forward (backward = false) or backward needs for this spec and shape,
// for maps of dtype `dt`. ramp and the multiplicative controller recompute the scores in the
// backward (one extra GEMM, one extra map) instead of keeping them alive from the forward.
// maps_in_workspace (forward only): room for the probability maps the caller does not keep.
size_t attention_workspace_bytes(const AttentionSpec& spec, int64_t B, int64_t T, int64_t S,
                                 DType dt, bool backward, bool has_score_mul, bool maps_in_workspace = false);

// The same for either backend (fused: the tiled reference's backward scratch; its forward needs
// none, and takes no maps: probs/probs2 stay undefined and maps_in_workspace is ignored).
size_t attention_backend_workspace_bytes(AttentionBackend backend, const AttentionSpec& spec, int64_t B,
                                         int64_t T, int64_t S, DType dt, bool backward, bool has_score_mul,
                                         bool maps_in_workspace = false);

// Both run the backend named by a.backend (materialized, or fused through attention_tiled_*).
void attention_forward(Ctx& ctx, const AttentionArgs& a);
void attention_backward(Ctx& ctx, const AttentionBackwardArgs& a);

// Resolved sizes shared by the dispatcher, the CPU code and the CUDA launchers.
struct AttnShape {
  int64_t B = 0, Hq = 0, Hkv = 0, G = 0, T = 0, S = 0, S_cap = 0, d = 0, dv = 0;
  int64_t offset = 0;  // resolved query offset
  double scale = 1;
  int64_t nrows_capture = 0, nspans = 0;
  int64_t map_elems() const { return B * Hq * T * S; }
  int64_t rows() const { return B * Hq * T; }
};

// Workspace layout (byte offsets from the start, 256-aligned).
struct AttnWorkspace {
  size_t map_bytes = 0;     // one [B, Hq, T, S] map of the compute dtype
  int nmaps = 0;            // maps used
  size_t partials_off = 0;  // acc [B, Hq, T] per-row dλ partials (differential backward)
  size_t kept_maps_off = 0; // forward with maps_in_workspace: probs (and probs2) start here
  size_t dropped_off = 0;   // spec.dropout > 0: the dropped map P ⊙ mask / (1 − p) starts here
  size_t total = 0;
};
AttnWorkspace attention_workspace_layout(const AttentionSpec& spec, const AttnShape& sh, DType dt,
                                         bool backward, bool has_score_mul, bool maps_in_workspace = false);
// Whether the backward recomputes the scores (ramp needs both maps' parts; τ needs Sc for dτ).
inline bool attention_backward_needs_scores(const AttentionSpec& s, bool has_score_mul) {
  return s.norm == AttnNorm::ramp || has_score_mul;
}

// spec.dropout > 0: dst = src ⊙ mask / (1 − p) over one [B, Hq, T, S] map of the compute dtype
// (both devices; the dropout op). Shared by the CPU and the CUDA implementations.
void attention_drop_map(Ctx& ctx, const AttentionSpec& spec, const AttnShape& sh, DType dt, void* dst,
                        const void* src, uint64_t offset);

namespace cpu {
void attention_forward(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh);
void attention_backward(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh);
}  // namespace cpu

namespace cuda {
void attention_forward(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh);
void attention_backward(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh);
}  // namespace cuda

}  // namespace attnlab
