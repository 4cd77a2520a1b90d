#pragma once
// A decoder language model built from an HF config.json (core/io/hf_config.h):
//   GPT-2 (any size): learned positions, LayerNorm, GELU-tanh MLP, fused c_attn, tied head;
//   Qwen2/2.5: RMSNorm, RoPE (θ from config), GQA, q/k/v biases, SwiGLU, tied or untied head;
//   Qwen3: Qwen2 plus per-head q_norm/k_norm, no biases (attention_bias), head_dim from config.
// Parameters carry the HF names (core/layers/param.h); checkpoints are read and written by
// core/models/weights.h.
//
// Use:
//   Model m(config, {Device::cuda, DType::bf16}, ctx);   // parameters and gradients laid out
//   init_weights(m, ctx, seed) or load_weights(m, ctx, folder);
//   m.params().set_trainable(ctx, {"*.k_proj.*", "*.v_proj.*"});   // optional
//   m.plan(ctx, B, T);                                   // activations, once per shape
//   step: m.params().zero_grads(ctx); m.forward(ctx, ids, targets, n); m.backward(ctx);
//
// dtypes: CPU f32 or f64, CUDA f32 or bf16 (bf16 values are the working copy; gradients f32).
// ids/targets are [B, T] i32 on the model's device and must stay alive until backward: the
// embedding's backward reads the ids again, the loss's backward the targets.
// Dropout (GPT-2 embd_pdrop / resid_pdrop / attn_pdrop from config.json, HF's 0.1 when absent)
// applies only in training mode (set_training(true)); attn_pdrop drops attention probabilities
// inside the attention op (core/ops/attention.h, spec.dropout).
// When only the head's parameters train (the trunk frozen, METHODS §5.5) the trunk runs as in eval
// mode (no dropout, METHODS §5.3) and backward stops after the head: no block has a gradient to take.
//
// Padded vocabulary (on by default, ModelOptions::vocab_multiple): the token embedding and an
// untied lm_head.weight hold Vp = round_up(V, 64) rows in memory, rows ≥ V zero (Param::pad_rows).
// Only the LM head's GEMMs see them (aligned logits rows; docs/gpu-status.md); everything else
// sees V: the embedding reads rows < V, the loss uses the first V logits columns, the padding rows'
// gradients are exactly zero (so AdamW, weight decay included, keeps them at zero), checkpoints
// hold [V, C], generation computes [B, V] logits from the first V rows, parameter counts exclude
// the padding. The logits buffer itself is [B, T, Vp]: padded_logits(); logits_f64() gives the
// [B, T, V] values.
#include <memory>
#include <vector>

#include "core/io/hf_config.h"
#include "core/layers/activations.h"
#include "core/layers/dropout.h"
#include "core/layers/embedding.h"
#include "core/layers/output_head.h"
#include "core/layers/norm.h"
#include "core/layers/param.h"
#include "core/models/decoder_block.h"
#include "core/models/trainable_model.h"

namespace attnlab {

struct ModelOptions {
  Device device = Device::cpu;
  DType dtype = DType::f32;
  bool allocate_grads = true;  // false: inference only (no gradient memory)
  // The embedding / LM head rows are rounded up to a multiple of this (≥ 1; 1 = no padding).
  // 64 makes every bf16 logits row 128-byte aligned (llm.c pads the same way).
  int64_t vocab_multiple = 64;
};

// round_up(V, multiple): the rows of the padded embedding / LM head.
int64_t padded_vocab_size(int64_t vocab, int64_t multiple);
// Host logits [rows, Vp] → [rows, V]: the first V of every row (the padding columns dropped).
std::vector<double> drop_padding_columns(const std::vector<double>& padded, int64_t rows, int64_t padded_vocab,
                                         int64_t vocab);

class Model : public TrainableModel {
 public:
  Model(const ModelConfig& config, const ModelOptions& options, const Ctx& ctx);
  ~Model() override;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  ParamStore& params() override { return params_; }
  const ParamStore& params() const override { return params_; }
  Device device() const override { return options_.device; }
  DType dtype() const override { return options_.dtype; }
  int64_t num_layers() const override { return int64_t(blocks_.size()); }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t attention_width() const override { return config_.num_heads * config_.head_dim; }
  std::string describe() const override;
  // An HF folder (save_model / load_weights of core/models/weights.h).
  void save_weights(Ctx& ctx, const std::string& folder) const override;
  void load_weights(Ctx& ctx, const std::string& folder) override;

  void set_training(bool training) override;
  bool training() const { return training_; }

  // Lays out the activations for batches of B sequences of T tokens (one arena; replaces an
  // earlier plan). forward/backward then take exactly [B, T] inputs.
  void plan(Ctx& ctx, int64_t B, int64_t T) override;
  int64_t planned_batch() const { return B_; }
  int64_t planned_tokens() const { return T_; }
  size_t activation_bytes() const { return planner_.capacity(); }

  // ids [B, T] i32. With targets ([B, T] i32, kIgnoreIndex = skip) also computes the loss
  // Σ per-token loss / valid_count, returned as a [1] acc-dtype device tensor (undefined without
  // targets). Logits are available from logits() until backward.
  Tensor forward(Ctx& ctx, const Tensor& ids, const Tensor& targets, double valid_count) override;
  // Accumulates every trainable parameter's gradient (zero them first: params().zero_grads).
  void backward(Ctx& ctx) override;
  // Called after each block's backward with that block's first parameter (param.h); empty: none.
  void set_grad_ready_hook(GradReadyHook hook) override { grad_ready_ = std::move(hook); }

  int64_t vocab() const { return config_.vocab_size; }  // V: token ids are < V
  int64_t padded_vocab() const { return head_->padded_vocab(); }  // Vp ≥ V: rows of the embedding / head

  // [B, T, Vp], model dtype, valid between forward and backward. Columns ≥ V are padding (the
  // padding rows are zero, so they hold 0): not logits of any token. Use logits_f64 for [B, T, V].
  Tensor padded_logits() const override;
  // The logits [B, T, V] on the host (padding columns dropped), as doubles (exact for every dtype).
  std::vector<double> logits_f64(Ctx& ctx) const override;
  const Tensor& loss() const { return head_->loss(); }

  AttentionLayer& attention(int64_t layer) { return blocks_.at(size_t(layer))->attention(); }
  DecoderBlock& block(int64_t layer) { return *blocks_.at(size_t(layer)); }
  const Norm& final_norm() const { return final_norm_; }
  Param* token_embedding() const { return embedding_.tokens(); }
  Param* lm_head_weight() const { return head_->vocab_table(); }
  // The head slot (core/layers/output_head.h): training, plain forward and generation all use it.
  const OutputHead& head() const { return *head_; }

  // HF module prefixes of this architecture.
  std::string block_prefix(int64_t layer) const;

 private:
  void plan_all(ActivationPlanner& p, const Ctx& ctx);
  // Whether any parameter below the head trains; the trunk's dropout follows training && this.
  bool trunk_trainable() const;
  void set_trunk_training(bool training);
  void check_inputs(const Tensor& ids, const Tensor& targets) const;

  ModelConfig config_;
  ModelOptions options_;
  ParamStore params_;
  TokenEmbedding embedding_;
  Dropout embedding_dropout_;
  std::vector<std::unique_ptr<DecoderBlock>> blocks_;
  std::vector<const Param*> block_first_;  // each block's first registered parameter
  GradReadyHook grad_ready_;
  Norm final_norm_;
  std::unique_ptr<OutputHead> head_;
  size_t head_first_ = 0;  // the head's parameters are registered from this index on
  bool training_ = false;

  ActivationPlanner planner_;
  int64_t B_ = 0, T_ = 0;
  std::vector<Tensor> residual_;  // saved: residual_[l] is block l's input, residual_[L] the last output
  Tensor final_out_;              // saved: final norm output (the head's input)
  Tensor d_residual_;             // the residual stream's gradient, alive through the whole backward
  Tensor d_final_;                // scratch: ∂L/∂(final norm output)
  Tensor ids_;                    // the last forward's ids (the embedding backward reads them)
  bool have_loss_ = false;
};

// Shifted causal-LM targets on the host: targets[b, t] = ids[b, t + 1], the last position of each
// row kIgnoreIndex (HF's labels = input_ids convention). Returns the number of valid targets.
int64_t causal_lm_targets(const std::vector<int32_t>& ids, int64_t B, int64_t T, std::vector<int32_t>& targets);

}  // namespace attnlab
