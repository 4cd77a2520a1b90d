#pragma once
// The "two_pass" attention variant (METHODS §1.3–1.4, seed 000): uncertainty-gated inputs.
//
//   draft (no gradient):  q̃, k̃ = the shell's q/k branches on the ungated x (same weights, RoPE)
//                         e_t = H(softmax(x_t Eᵀ))  the LM-head entropy of the layer's own input
//                         (op lm_entropy, E = the model's lm_head / tied embedding, no final norm)
//                         u = P̄ e = (1/Hq) Σ_h softmax(q̃_h k̃ᵀ/√d + M) e
//   gates:                x_g = x ⊙ (1 + 0.2·tanh(fc2_g(gelu(fc1_g([x, u]))))),  g ∈ {q, k, v} (op gate_mlp)
//   gated pass:           the standard attention with q, k, v projected from x_q, x_k, x_v
//
// The gather u = P̄ e runs through the attention op itself: the draft attention's values are the
// entropies (value head dim 1, every kv head holding e), so its output is P̃_h e per head, and u
// is the mean of the Hq outputs. No head-averaged [T, T] map is ever formed; the draft map lives
// in the op's workspace and is gone when the forward returns.
//
// Gradients: the gated pass and the gates are differentiated (METHODS §1.4); u, e, the draft map
// and the lm_head get none from this layer (gate_mlp produces no du by design).
//
// Initialisation: fc2 (weight and bias) zero, so adj = 0 and x_g = x exactly: a freshly gated
// pretrained model computes bit for bit what the plain one does. fc1 is PyTorch's nn.Linear default
// U(−1/√(D+1), 1/√(D+1)). Loading a plain HF folder initialises the gates and lists them.
// Parameters: <prefix>.gate_{q,k,v}.fc1.{weight [16, D+1], bias [16]}, .fc2.{weight [D, 16], bias [D]}.
//
// Options (model.attention.*): draft_mask causal (default) | none; cached_gather self (default:
// a decode step uses u_t = e_t, the original) | draft_keys (the draft attention over cached draft
// keys and cached entropies: the layer keeps its own draft caches, since the model's KV cache
// holds the gated keys). A prefill (a cached call from slot 0) always runs the draft gather.
//
// Probes: "gate_magnitude" = (‖adj_q‖ + ‖adj_k‖ + ‖adj_v‖)/3 per token, every forward call.
//
// dtypes: f32 and f64 (CPU), f32 (CUDA). bf16 is refused: the entropies are the draft attention's
// values, and attnlab has no op that casts them to bf16 yet.
#include <memory>

#include "core/layers/standard_attention.h"
#include "core/memory.h"
#include "core/ops/gate_mlp.h"

namespace attnlab {

class TwoPassAttention : public StandardAttention {
 public:
  explicit TwoPassAttention(const AttentionLayerArgs& args);
  void bind_model(const AttentionModelRefs& refs) override;
  const AttentionSpec& draft_spec() const { return draft_spec_; }

 protected:
  void plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) override;
  bool gates_inputs() const override { return true; }
  GatedInputs gate_forward(Ctx& ctx, const DraftInputs& in) override;
  GatedInputs gate_inputs_again(Ctx& ctx, const Tensor& x) override;
  GatedInputs gate_input_grads() override { return {dxg_[0], dxg_[1], dxg_[2]}; }
  void gate_backward(Ctx& ctx, const Tensor& x, const GatedInputs& d, const Tensor& dx) override;
  bool draft_needed(const CachedAttentionArgs& a) const override;
  size_t gate_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const override;
  GatedInputs gate_forward_cached(Ctx& ctx, const DraftInputs& in) override;

 private:
  struct Draft;  // the draft pass's buffers for one call
  struct Gate {
    Param *fc1_w = nullptr, *fc1_b = nullptr, *fc2_w = nullptr, *fc2_b = nullptr;
  };
  GateParams gate_params(int g) const;
  Tensor lm_head() const;
  int64_t vocab() const;
  void check_dtype(DType dt) const;
  // e [rows] ← the entropy of every row of x.
  void entropy(Ctx& ctx, const Tensor& x, const Draft& d) const;
  // u [B, T] ← (1/Hq) Σ_h softmax(q k̃ᵀ/√d + M)_h · values, values [B, Hkv, S_cap, 1].
  void gather(Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& values, int64_t keys,
              const Tensor& key_lengths, int64_t query_offset, const Draft& d, const Tensor& u) const;
  // The three gates (and the gate_magnitude probe when asked and `probe`).
  void run_gates(Ctx& ctx, const Tensor& x, const Tensor& u, const Tensor* y, const Tensor& a1,
                 const Tensor& adj_norm, const Tensor& third, const Tensor& magnitude, bool probe) const;
  bool probing(const Ctx& ctx) const;

  Gate gates_[kNumGates];
  Param* head_ = nullptr;
  AttentionSpec draft_spec_;
  bool draft_keys_ = false;
  int64_t B_ = 0, T_ = 0;
  // saved
  Tensor u_, a1_;
  // scratch
  Tensor e_, ent_scratch_, ent_state_, draft_v_, draft_o_, draft_lse_, draft_ws_;
  Tensor xg_[kNumGates], dxg_[kNumGates], bwd_scratch_, adj_norm_, third_, magnitude_;
  // cached_gather: draft_keys — this layer's draft keys [B, Hkv, S_cap, d], entropies
  // [B, 1, S_cap, 1] and the entropies repeated for every kv head [B, Hkv, S_cap, 1] (the values)
  Buffer draft_k_cache_, draft_e_cache_, draft_v_cache_;
};

std::unique_ptr<AttentionLayer> make_two_pass_attention(const AttentionLayerArgs& args);

}  // namespace attnlab
