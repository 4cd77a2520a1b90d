#pragma once
// The backward attention head of seed 004 (METHODS §5.3–5.4): a language-model head that replaces
// GPT-2's lm_head. Per row t (a position of the frozen model, final hidden h_t = ln_f(...)):
//
//   vocabulary side (input-independent):  Ê = RMSNorm(E[:V]; γ_e)        [V, D]
//                                          Ẽ = Ê W_latᵀ (latent) or Ê      [V, r]
//                                          K = Ẽ W_Kᵀ [V, dk], Vv = Ẽ W_Vᵀ [V, dv]
//   row side:  z_t = h_t Eᵀ, w_t = softmax(z_t / τ) (top-k: over {j : z_j/τ ≥ θ_t}, θ_t the k-th
//              largest z/τ of the row; ties at θ_t are all kept), m_t = w_tᵀ Vv,
//              per head h (H slices of dk and dv): n_t^h = RMSNorm(m_t^h; γ_q^h),
//              q_t^h = n_t^h W_Q^hᵀ, s_t^h = β_h · K^h q_t^h / sqrt(dk/H), π_t^h = softmax(s_t^h),
//              p_t = (1/H) Σ_h π_t^h (a mixture of softmaxes), loss_t = −log p_t[y_t].
//   H = 1 is the single head of §5.3 (p = π). The backward is §5.4 (mixture: dS^h = ρ_h(π^h −
//   onehot(y)), ρ_h = π^h_y / (H p_y), ρ = 1 for one head); nothing flows into h or E.
//
// Tiling: the vocabulary is walked in tiles of `tile` rows. The forward walks it three times
// (1: row max of z/τ and, with top-k, a running top-k list per row; 2: w and m += w·Vv;
// 3: online log-sum-exp of the scores per head, target score captured), plus a fourth time when
// log-probabilities are requested. The backward walks it twice (scores → dS → dQ, dK; then
// w again → dVv). The largest row-side buffers are the tiles: N×tile (z, w) and H·N×tile (scores,
// dS); nothing of size N×V exists unless `logprobs` is requested. GEMMs go through the matmul op
// (OpenBLAS / cuBLASLt); the row work is in row kernels (backward_head_rows.h; the CPU loops and
// the CUDA kernels share backward_head_math.h). The CUDA path is deterministic (block reductions
// in fixed order, per-row state owned by one block, column sums through cuda::bias_grad).
//
// Dtypes: T is the compute dtype (CPU f32/f64, CUDA f32/bf16): hidden, embed, the weight matrices,
// γ_e, γ_q and the saved vocabulary-side tensors, the normalised queries and the queries.
// A = acc_t<T> (f32, f64 for f64): β, every statistic, the mean m, the loss, the log-probs and
// every parameter gradient. Score and logit tiles are A (GPT-2 logits of size ~100 would lose
// their softmax in bf16); the tiles fed to GEMMs as operands (w, dS) are T.
//
// Parameters, as a saved model names them (shapes for D, r, dk, dv, H):
//   backward_head.embed_norm.weight   γ_e    T [D]          init 1
//   backward_head.latent_proj.weight  W_lat  T [r, D]       latent only; init: first r rows of I
//   backward_head.k_proj.weight       W_K    T [dk, r]      init I (rows/cols beyond min: 0)
//   backward_head.v_proj.weight       W_V    T [dv, r]      init I
//   backward_head.q_norm.weight       γ_q    T [dv]         head h uses [h·dv/H, (h+1)·dv/H); init 1
//   backward_head.q_proj.weight       W_Q    T [dk, dv/H]   head h is rows [h·dk/H, (h+1)·dk/H)
//                                                           (= [H, dk/H, dv/H]); init I per head
//   backward_head.beta                β      A [H]          init 1 (frozen at 1 with --no-beta:
//                                                           pass no dbeta)
// backward_head_identity_init writes these initial values.
//
// Nothing is allocated: the caller passes the saved tensors (BackwardHeadSaved, which
// backward_head_carve_saved can lay out in one buffer) and a workspace of
// backward_head_workspace_bytes().
#include <cstddef>

#include "core/ctx.h"

namespace attnlab {

struct BackwardHeadSpec {
  int64_t D = 0;        // hidden size = embedding width
  int64_t latent = 0;   // r of the latent projection; 0 = off (Ẽ = Ê, r = D)
  int64_t dk = 0;       // key/query width; 0 = r
  int64_t dv = 0;       // value width; 0 = r
  int64_t heads = 1;    // H; divides dk and dv
  int64_t top_k = 0;    // k of the top-k restriction of w; 0 (or ≥ V) = all V
  double tau = 1.0;     // temperature τ of w = softmax(z/τ); > 0
  int64_t tile = 8192;  // vocabulary rows per tile (any value ≥ 1; need not divide V)
  double eps = 1e-6;    // eps of both RMSNorms

  int64_t r() const { return latent > 0 ? latent : D; }
  int64_t key_dim() const { return dk > 0 ? dk : r(); }
  int64_t value_dim() const { return dv > 0 ? dv : r(); }
};

struct BackwardHeadParams {
  Tensor embed_norm;   // in T [D]          γ_e
  Tensor latent_proj;  // in T [r, D]       W_lat (latent only; must be undefined otherwise)
  Tensor k_proj;       // in T [dk, r]      W_K
  Tensor v_proj;       // in T [dv, r]      W_V
  Tensor q_norm;       // in T [dv]         γ_q
  Tensor q_proj;       // in T [dk, dv/H]   W_Q
  Tensor beta;         // in A [H]          β
};

// Parameter gradients: accumulated (+=), A dtype, the shapes of BackwardHeadParams. An undefined
// gradient is a frozen parameter: its GEMM is skipped, and so is every product only it needs.
struct BackwardHeadGrads {
  Tensor embed_norm, latent_proj, k_proj, v_proj, q_norm, q_proj, beta;
};

// Written by the forward, read by the backward. Vocabulary side first (V = classes), then rows.
struct BackwardHeadSaved {
  Tensor embed_hat;    // T [V, D]   Ê
  Tensor embed_rstd;   // A [V]      RMSNorm r of each embedding row
  Tensor latent_out;   // T [V, r]   Ẽ (latent only)
  Tensor keys;         // T [V, dk]  K
  Tensor values;       // T [V, dv]  Vv
  Tensor w_shift;      // A [N]      max_j z_j/τ (the shift of w's exponentials)
  Tensor w_theta;      // A [N]      θ, the k-th largest z/τ (top-k only)
  Tensor w_lse;        // A [N]      log Σ_{kept j} exp(z_j/τ)
  Tensor mean;         // A [N, dv]  m
  Tensor q_rstd;       // A [N, H]   RMSNorm r of each head slice of m
  Tensor q_normed;     // T [N, dv]  n
  Tensor query;        // T [N, dk]  q
  Tensor score_lse;    // A [N, H]   log Σ_j exp(s^h_j)
  Tensor target_logp;  // A [N, H]   log π^h_y (0 for ignored rows)
};

struct BackwardHeadArgs {
  BackwardHeadSpec spec;
  Tensor hidden;       // in  T [N, D]  final hidden states h of the frozen model
  Tensor embed;        // in  T [Vp, D] tied token embedding E; rows [V, Vp) (padding) never read
  int64_t vocab = 0;   // V: the first V rows of embed are the classes; 0 = all Vp
  Tensor targets;      // in  i32 [N]   class in [0, V) or kIgnoreIndex (−100); undefined: no loss
  BackwardHeadParams params;
  BackwardHeadSaved saved;  // out (the vocabulary-side part is in when vocab_ready)
  // The vocabulary side depends on the parameters only: true reuses saved.embed_hat/embed_rstd/
  // latent_out/keys/values from an earlier forward with the same parameters (later micro-batches
  // of one optimizer step, every decoding step of a generation).
  bool vocab_ready = false;
  Tensor loss;         // out A [N]     −log p_t[y_t]; 0 for ignored rows. Needs targets.
  // out A [N, V], optional: log p_t over the V classes for every row (for generation pass only
  // the rows to sample, e.g. the last position of each sequence; sampling takes it as logits).
  Tensor logprobs;
  Tensor workspace;    // scratch, ≥ backward_head_workspace_bytes(..., backward = false)
};

// Gradient of the scalar dloss · Σ_t loss_t / valid_count (the trainer's global mean).
struct BackwardHeadBackwardArgs {
  BackwardHeadSpec spec;
  Tensor hidden, embed;  // in: as in the forward
  int64_t vocab = 0;
  Tensor targets;        // in: as in the forward (required)
  BackwardHeadParams params;
  BackwardHeadSaved saved;  // in: written by the forward
  Tensor loss;           // in A [N]: from the forward
  BackwardHeadGrads grads;  // out: accumulated
  double dloss = 1.0;
  double valid_count = 0.0;  // > 0
  Tensor workspace;      // scratch, ≥ backward_head_workspace_bytes(..., backward = true)
};

void backward_head_forward(Ctx& ctx, const BackwardHeadArgs& a);
void backward_head_backward(Ctx& ctx, const BackwardHeadBackwardArgs& a);

// Bytes of scratch for N rows and V classes with compute dtype dt (the tiles, the running row
// statistics, and in the backward the gradients of q, n, m, K, Vv, Ẽ, Ê).
size_t backward_head_workspace_bytes(const Ctx& ctx, const BackwardHeadSpec& spec, int64_t N,
                                     int64_t V, DType dt, bool backward);

// Bytes of one buffer holding every saved tensor, and the tensors carved from it (on `dev`).
size_t backward_head_saved_bytes(const BackwardHeadSpec& spec, int64_t N, int64_t V, DType dt);
BackwardHeadSaved backward_head_carve_saved(const BackwardHeadSpec& spec, int64_t N, int64_t V,
                                            DType dt, Device dev, void* base);

// Writes the initial values of METHODS §5.3 into every defined parameter (host round trip: setup
// only, never in the step).
void backward_head_identity_init(const Ctx& ctx, const BackwardHeadSpec& spec,
                                 const BackwardHeadParams& p);

}  // namespace attnlab
