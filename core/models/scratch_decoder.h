#pragma once
// The from-scratch decoders of METHODS §3 (seed 002): a small learned-position decoder in two
// presets, each with a standard or a differential attention layer.
//
//   paper: positions unscaled; x += Attn(RMSNorm_a(x)); x += FFN(RMSNorm_f(x)) (separate norms,
//          P2, eps 1e−6); final RMSNorm. standard = bias-free MHA (heads × head_dim);
//          differential = the paper operator (§3.2) with heads/2 heads of 2 × head_dim.
//   seed:  ONE norm per block used for both sub-layers (LayerNorm eps 1e−5 for standard,
//          SimpleRMSNorm for differential); standard adds √D·pos, differential adds pos;
//          standard attention = per-head Linear(D→head_dim, bias) q/k/v, concat → Linear(D→D, bias)
//          → LayerNorm(D); differential = the seed operator (§3.3). Final norm of the block's type.
//   both:  token Embedding(V, D, padding_idx = pad_id: the row starts at zero and its gradient is
//          dropped), learned positions [context, D], FFN Linear(D→F, bias) → GELU(erf) → Dropout →
//          Linear(F→D, bias), dropout on the embedding sum, untied output Linear(D→V, bias).
//   options (model.decoder, core/config/decoder_options.h; METHODS §3.5 --rope / --ffn swiglu):
//          rope: RoPE θ = 10,000 on q and k instead of the learned position table (no pos_emb):
//          rotate-half for the standard baseline, interleaved pairs per sub-head of dim d for
//          differential attention; ffn: swiglu: down(silu(gate(x)) ⊙ up(x)), no biases, no inner
//          dropout, hidden `ffn` (scratch_swiglu_hidden(D) = 8/3·D rounded up to a multiple of 64
//          unless intermediate_size is given).
//   The inverted mask of the original is NOT reproduced: attention is causal (METHODS §3.5 BUG).
//
// Use like Model: ScratchDecoder m(cfg, {dev, dt}, ctx); init_scratch_decoder(m, ctx, seed);
// m.plan(ctx, B, T); m.params().zero_grads(ctx); m.forward(ctx, ids, targets, n); m.backward(ctx).
#include <memory>
#include <string>
#include <vector>

#include "core/config/decoder_options.h"
#include "core/io/hf_config.h"
#include "core/layers/attention_layer.h"
#include "core/layers/dropout.h"
#include "core/layers/embedding.h"
#include "core/layers/linear.h"
#include "core/layers/norm.h"
#include "core/models/decoder_block.h"
#include "core/models/model.h"
#include "core/models/trainable_model.h"

namespace attnlab {

struct ScratchDecoderConfig {
  enum class Preset { paper, seed };
  Preset preset = Preset::paper;
  bool differential = false;
  int64_t vocab_size = 50257, hidden = 512, layers = 4, heads = 8, head_dim = 64, ffn = 2048, context = 512;
  int64_t pad_id = 50256;
  double dropout = 0.1;
  // The attention options (norm, controller, lambda_init, ...); variant and preset above win.
  AttentionOptions attention;
  // The block options (rope, ffn); ffn above is the FFN's hidden size for either kind.
  DecoderOptions decoder;
};

// The SwiGLU FFN's hidden size when none is given: 8/3·D (the Differential Transformer's and
// LLaMA's ratio, which matches the 4·D GELU FFN's 8·D² weights with three matrices) rounded up to
// a multiple of 64 for aligned GEMM tiles: D = 512 → 1408.
int64_t scratch_swiglu_hidden(int64_t hidden);

// "paper" / "seed" (throws otherwise).
ScratchDecoderConfig::Preset scratch_preset_from_name(const std::string& name);

class ScratchDecoder : public TrainableModel {
 public:
  ScratchDecoder(const ScratchDecoderConfig& config, const ModelOptions& options, const Ctx& ctx);
  ~ScratchDecoder() override;
  ScratchDecoder(const ScratchDecoder&) = delete;
  ScratchDecoder& operator=(const ScratchDecoder&) = delete;

  const ScratchDecoderConfig& config() const { return config_; }
  ParamStore& params() override { return params_; }
  const ParamStore& params() const override { return params_; }
  Device device() const override { return options_.device; }
  DType dtype() const override { return options_.dtype; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t num_layers() const override { return config_.layers; }
  // Both attentions read heads × head_dim = D query·key columns (DIFF: h heads of two d-maps).
  int64_t attention_width() const override { return config_.heads * config_.head_dim; }
  std::string describe() const override;
  // folder/model.safetensors (save_scratch_decoder / load_scratch_decoder below).
  void save_weights(Ctx& ctx, const std::string& folder) const override;
  void load_weights(Ctx& ctx, const std::string& folder) override;
  void set_training(bool training) override;

  void plan(Ctx& ctx, int64_t B, int64_t T) override;
  // ids, targets [B, T] i32 (targets kIgnoreIndex where no loss, e.g. padding); loss = Σ / valid_count.
  Tensor forward(Ctx& ctx, const Tensor& ids, const Tensor& targets, double valid_count) override;
  void backward(Ctx& ctx) override;
  // Logits between forward and backward, as Model's: the buffer is [B, T, Vp] (the output layer's
  // rows padded to ModelOptions::vocab_multiple; columns ≥ V are padding), logits_f64 the
  // [B, T, V] values on the host. Checkpoints hold [V, D] and [V]; the loss uses V columns.
  Tensor padded_logits() const override;
  std::vector<double> logits_f64(Ctx& ctx) const override;
  int64_t padded_vocab() const;
  AttentionLayer& attention(int64_t layer);
  // The attention rows `rows` (query positions) of layer `layer` for one sequence `ids`, averaged
  // over heads (differential: A1 − λA2 per head), from the attention op's captures; [n][T].
  // Runs a forward without loss in the current mode (set_training(false) for analyses) and
  // re-plans for [1, T] when the plan differs.
  std::vector<std::vector<double>> attention_rows(Ctx& ctx, const std::vector<int32_t>& ids,
                                                  const std::vector<int32_t>& rows, int64_t layer);

 private:
  void plan_all(ActivationPlanner& p, const Ctx& ctx);

  ScratchDecoderConfig config_;
  ModelConfig layer_config_;  // what the attention layers read (sizes and the attnlab block)
  ModelOptions options_;
  ParamStore params_;
  Param* tok_emb_ = nullptr;
  Param* pos_emb_ = nullptr;
  double pos_scale_ = 1;
  TokenEmbedding tok_embedding_;
  Dropout emb_drop_;
  std::vector<std::unique_ptr<DecoderBlock>> blocks_;
  Norm final_norm_;
  Linear output_;
  ActivationPlanner planner_;
  int64_t B_ = 0, T_ = 0;
  bool have_loss_ = false;
  std::vector<Tensor> residual_;
  Tensor final_out_, d_residual_, d_final_, logits_, row_loss_, lse_, loss_, one_;
  Tensor ids_, targets_;
  double valid_count_ = 0;
};

// PyTorch default init (Linear weight and bias U(±1/√fan_in), Embedding N(0, 1) with the pad row
// zero, norms ones / zeros); differential λ vectors N(0, 0.1²) (paper) and λ' N(0, 1) (seed).
void init_scratch_decoder(ScratchDecoder& m, Ctx& ctx, uint64_t seed);
// Every parameter as one safetensors file (model dtype), and back (names and shapes must match).
void save_scratch_decoder(const ScratchDecoder& m, Ctx& ctx, const std::string& path);
// The file's metadata records the config; read_scratch_decoder_config rebuilds it.
void load_scratch_decoder(ScratchDecoder& m, Ctx& ctx, const std::string& path);
ScratchDecoderConfig read_scratch_decoder_config(const std::string& path);
// The file a checkpoint folder holds the weights in: folder/model.safetensors.
std::string scratch_decoder_file(const std::string& folder);

}  // namespace attnlab
