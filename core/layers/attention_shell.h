#pragma once
// The attention shell: everything attention layers share, written once (DESIGN.md §6).
//
//   x ──q/k/v projections (split with biases, or GPT-2's fused c_attn band)──▶ [B, T, H, d]
//     ──per-head q/k RMSNorm (Qwen3)──▶ RoPE (or a permute) ──▶ heads-first q, k, v
//     ──KV-cache write (forward_cached)──▶ the variant's attention step ──▶ o [B, Ho, T, do]
//     ──per-head output norm (differential)──▶ merge heads ──▶ o_proj (·scale) ──▶ LayerNorm(D)
//     (scratch seed models) ──▶ y
//
// forward / backward / forward_cached are final here: they open the NVTX range, check their
// arguments, run the shared parts and call the variant's step (attend / attend_backward). A
// variant declares its projection and output shapes in a ShellLayout and implements the step;
// StandardAttention, DifferentialAttention and TwoPassAttention are the three today.
//
// Input gating (TwoPassAttention, METHODS §1.3): a variant whose gates_inputs() is true makes the
// q, k and v projections read three gated copies of x. The shell first runs the q and k branches
// (projection, q/k norm, RoPE) on the ungated x — the draft q̃, k̃ — hands them to gate_forward,
// and then projects the gated inputs it returns; the backward hands the projections' input
// gradients to gate_backward, which writes dx. The draft gets no gradient.
//
// Every variant also gets, from the shell, a per-row score controller (option "controller":
// info_density or temperature, core/layers/score_controller.h) with its own parameters, trained
// with the layer and active in generation, and probes (core/probes.h): captures of attention
// statistics and of q_proj outputs / attention outputs at chosen positions.
//
// Memory: the shell saves what its own backward needs (the q/k projection outputs when q/k are
// normalised, the heads-first q/k/v unless the variant keeps its own copy, the merged heads, the
// output-stage norms' statistics); the variant plans what its step saves (probability maps, row
// statistics). forward_cached keeps nothing and takes all memory from the caller's scratch arena.
#include <memory>
#include <string>

#include "core/arena.h"
#include "core/layers/attention_layer.h"
#include "core/layers/layer_name.h"
#include "core/layers/linear.h"
#include "core/layers/norm.h"
#include "core/layers/score_controller.h"
#include "core/ops/attention.h"
#include "core/ops/rope.h"
#include "core/probes.h"

namespace attnlab {

// The shapes and parts of one attention layer, declared by its variant.
struct ShellLayout {
  int64_t D = 0;                       // model width (x and y are [B, T, D])
  int64_t q_heads = 0, kv_heads = 0;   // heads of the q and k projections, each head_dim wide
  int64_t head_dim = 0;
  int64_t v_heads = 0, v_dim = 0;      // the v projection: v_heads × v_dim
  int64_t out_heads = 0, out_dim = 0;  // the step's output [B, out_heads, T, out_dim]
  bool fused_qkv = false;              // GPT-2: q, k, v are row bands of one c_attn [3D, D] (Conv1D)
  bool qkv_bias = false, o_bias = false;
  std::string o_name = "o_proj";       // "c_proj" (GPT-2), "out_proj" (scratch decoders)
  bool o_conv1d = false;               // GPT-2: c_proj stored [in, out] in the checkpoint
  bool qk_norm = false;                // Qwen3: per-head RMSNorm of q and k (q_norm, k_norm)
  double qk_norm_eps = 1e-6;
  bool rope = false;                   // positions: RoPE on q and k (else none: learned or absent)
  RopeSpec rope_spec;
  bool shell_keeps_qk = true;          // false: the step keeps its own q/k (the shell's are scratch)
  // Output stage.
  bool head_norm = false;              // RMSNorm over out_dim per head, one weight "<prefix>.subln.weight"
  double head_norm_eps = 1e-5;
  double out_scale = 1;                // y scaled by this (the o_proj GEMM's alpha without post_norm)
  bool post_norm = false;              // LayerNorm(D) after o_proj, "<prefix>.out_norm", eps 1e-5
};

// The rotation of a RoPE model (rope_theta > 0): rotate-half (HF Qwen) or interleaved
// (config.rope_interleaved) pairs over each head of config.head_dim dims, heads-first output.
// Differential attention applies it to each of its two sub-heads of dim d.
RopeSpec model_rope_spec(const ModelConfig& config);

// What the shell hands the variant's step. q [B, q_heads, T, head_dim], k [B, kv_heads, S_cap,
// head_dim], v [B, v_heads, S_cap, v_dim], heads-first. In training S = S_cap = T.
struct AttendInputs {
  Tensor q, k, v;
  int64_t keys = 0;           // S
  Tensor key_lengths;         // i32 [B] or undefined
  int64_t query_offset = -1;
  Tensor score_add, score_mul;  // controllers [B, Hq, T] (undefined: none)
  Arena* scratch = nullptr;   // forward_cached only: the step's memory (nothing is kept)
  AttentionCaptures* captures = nullptr;  // probes: what the op should capture (may be null)
};

// Input gating: the three gated inputs of the q, k and v projections (or their gradients), [B, T, D].
struct GatedInputs {
  Tensor q, k, v;
};

// What the shell hands gate_forward / gate_forward_cached.
struct DraftInputs {
  Tensor x;      // [B, T, D] the layer's input
  Tensor q;      // draft q̃ [B, Hq, T, d] heads-first (after q norm and RoPE)
  Tensor k;      // draft k̃: training [B, Hkv, T, d] heads-first; forward_cached [B, T, Hkv, d]
                 //   token-major (the layout the cache write reads); both rotated
  const CachedAttentionArgs* cached = nullptr;  // forward_cached: the call
};

struct AttendGrads {
  Tensor dout;                 // in  [B, out_heads, T, out_dim]
  Tensor out;                  // in  the step's forward output, when the shell saved it (head norm,
                               //     or a fused backend whose backward reads it: attend_saves_out)
  Tensor dq, dk, dv;           // out, shaped like q, k, v
  Tensor dscore_add, dscore_mul;  // out acc [B, Hq, T] when controllers are attached
};

class AttentionShell : public AttentionLayer {
 public:
  const std::string& name() const final { return name_.name; }
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) final;
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y) final;
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) final;
  size_t cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const final;
  void forward_cached(Ctx& ctx, const CachedAttentionArgs& args) final;
  // K: kv_heads × head_dim, V: v_heads × v_dim (the layout's).
  KvCacheShape kv_cache_shape() const final;

  const ShellLayout& layout() const { return layout_; }
  const ScoreController& controller() const { return controller_; }
  int64_t layer_index() const { return layer_; }

 protected:
  AttentionShell(const AttentionLayerArgs& args, const ShellLayout& layout);

  // The step's own saved slots and scratch for (B, T) (training path).
  virtual void plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) = 0;
  // out [B, out_heads, T, out_dim]. In training the step saves what attend_backward needs.
  virtual void attend(Ctx& ctx, const AttendInputs& in, const Tensor& out) = 0;
  virtual void attend_backward(Ctx& ctx, const AttendInputs& in, const AttendGrads& g) = 0;
  // Bytes attend() takes from AttendInputs::scratch in forward_cached; a variant without a
  // KV-cache path throws here (the default), naming the layer.
  virtual size_t attend_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const;
  // forward_cached: writes this call's keys k_tok [B, T, kv_heads, head_dim] (rotated) and values
  // v_tok [B, T, v_heads, v_dim] into the caches at args.positions. The default keeps the attention
  // op's heads-first layout; a variant that reads its cache its own way writes it its own way
  // (memory from `scratch`, given back by the caller).
  virtual void write_kv_cache(Ctx& ctx, const CachedAttentionArgs& args, const Tensor& k_tok, const Tensor& v_tok,
                              Arena& scratch);
  // Called once per forward (training and cached) before the projections (e.g. λ of differential).
  virtual void before_forward(Ctx& ctx) {}
  // Input gating (see the file comment). gates_inputs(): the variant gates; the rest is called
  // only then. gate_forward: the gated inputs of a training forward (the variant's slots).
  // gate_inputs_again: the same values in the backward (saved or recomputed). gate_input_grads:
  // [B, T, D] scratch for the projections' input gradients (not the shell's own scratch).
  // gate_backward: dx (overwritten) from those gradients. Cached: draft_needed says whether the
  // call needs the draft q̃/k̃; gate_forward_cached takes its memory from args.scratch (counted by
  // gate_cached_bytes) and returns the gated inputs there.
  virtual bool gates_inputs() const { return false; }
  virtual GatedInputs gate_forward(Ctx& ctx, const DraftInputs& in) { return {}; }
  virtual GatedInputs gate_inputs_again(Ctx& ctx, const Tensor& x) { return {}; }
  virtual GatedInputs gate_input_grads() { return {}; }
  virtual void gate_backward(Ctx& ctx, const Tensor& x, const GatedInputs& d, const Tensor& dx) {}
  virtual bool draft_needed(const CachedAttentionArgs& a) const { return false; }
  virtual size_t gate_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const { return 0; }
  virtual GatedInputs gate_forward_cached(Ctx& ctx, const DraftInputs& in) { return {}; }
  // The attention op's spec (heads, normalisation, differential): what probes can capture.
  virtual const AttentionSpec& attention_spec() const = 0;

  // forward_cached steps: the attention op's row statistics of `maps` maps (lse for softmax and
  // ramp, row min and sum for linear and ramp) and its workspace, with the maps kept in it (no
  // backward follows), from the call's scratch; cached_op_bytes is what they take.
  static size_t cached_op_bytes(const AttentionSpec& spec, int64_t B, int64_t T, int64_t S, DType dt,
                                bool has_score_mul);
  static void take_cached_op_memory(Arena& scratch, AttentionArgs& a, int64_t B, int64_t T, int64_t S, DType dt);
  // The op's inputs from the step's: q, k, v, the key count and lengths, the query offset and the
  // controllers (the spec, and a differential step's halves, are the variant's).
  static void set_op_inputs(AttentionInputs& a, const AttendInputs& in);
  // The attention op's backend on this device (model.attention.impl resolved by the support
  // matrix, core/ops/attention.h); planned_backend() is the one plan() chose for training.
  // `training`: the backend plan() chooses, for forwards that may apply the variant's attention
  // dropout in training mode (the fused backend has none, so the support matrix sends such layers to
  // materialized).
  AttentionBackend attention_backend(Device device, DType dt, bool training = false) const {
    AttentionSpec s = attention_spec();
    if (training) s.dropout = training_dropout();
    return attention_backend_for(impl_, s, device, dt);
  }
  // The attention-probability dropout the variant applies in training (GPT-2's attn_pdrop).
  virtual double training_dropout() const { return 0; }
  AttentionBackend planned_backend() const { return planned_backend_; }
  // Whether the step's backward reads its own forward output (AttendGrads::out): the shell then
  // saves it. Default: a fused backend with one output part (attention_fused_nparts).
  virtual bool attend_saves_out() const {
    return planned_backend_ == AttentionBackend::fused && attention_fused_nparts(attention_spec()) == 1;
  }

  // Whether the step gets a multiplicative controller (score_mul): the op's workspace depends on it.
  bool has_score_mul() const { return controller_.active() && controller_.kind() == ControllerKind::multiplicative; }

  LayerName name_;
  int64_t layer_ = 0;

 private:
  struct Branch {  // one of q and k
    Linear proj;
    RmsNorm norm;                  // qk_norm only
    Param* norm_weight = nullptr;  // qk_norm only, for forward_cached
    int64_t heads = 0;
    Tensor raw;                    // saved [B, T, H, d] projection output (qk_norm only)
    Tensor heads_first;            // [B, H, T, d] (saved unless the step keeps its own)
  };
  struct CachedBuffers;
  CachedBuffers cached_buffers(Arena* arena, DType dt, int64_t B, int64_t T, size_t* bytes) const;
  void branch_forward(Ctx& ctx, Branch& b, const Tensor& x, bool probe = true);
  // The step with the probes' captures attached (when a sink names this layer).
  void attend_probed(Ctx& ctx, AttendInputs in, const Tensor& out);
  void probe_activation(Ctx& ctx, const char* what, const Tensor& x);
  void branch_backward(Ctx& ctx, Branch& b, const Tensor& d_heads_first, const Tensor& x, const Tensor& dx,
                       bool accumulate_dx);
  void output_forward(Ctx& ctx, const Tensor& out_hf, const Tensor& merged, const Tensor& y, const Tensor& normed_hf,
                      const Tensor& lin_out, const Tensor& post_normed, const Tensor& head_rstd,
                      const Tensor& post_stats);
  AttendInputs training_inputs() const;

  ShellLayout layout_;
  Branch q_, k_;
  Linear v_proj_, o_proj_;
  Param* head_norm_weight_ = nullptr;
  RmsNorm head_norm_;
  Param *post_w_ = nullptr, *post_b_ = nullptr;
  LayerNorm post_norm_;
  ScoreController controller_;  // option "controller": none, info_density, temperature
  Tensor ctrl_out_, d_ctrl_;    // saved [B, Hq, T] acc, and its gradient (scratch)
  int64_t B_ = 0, T_ = 0;
  AttentionImpl impl_ = AttentionImpl::automatic;
  AttentionBackend planned_backend_ = AttentionBackend::materialized;
  // saved
  Tensor v_hf_, out_hf_, merged_, lin_out_;
  // scratch
  Tensor tok_, tok2_, normed_, d_merged_, d_out_hf_, dq_hf_, dk_hf_, dv_hf_;
};

}  // namespace attnlab
