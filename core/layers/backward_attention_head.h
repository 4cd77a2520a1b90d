#pragma once
// The backward attention head of METHODS §5 in the head slot (core/layers/output_head.h), registered
// as "backward_head": a layer over the backward_head op (core/ops/backward_head.h) that replaces the
// LM head of a (frozen) GPT-2. It reads the tied token embedding E [Vp, D] (never writes it: E gets
// no gradient from here), keeps its own parameters, and gives training the loss, the plain forward
// log-probabilities, and generation log p over the vocabulary (logits_rows: sampling takes them as
// logits, so temperature and top-k act on the head's own distribution).
//
// Parameters (saved under these names; declared ParamInit::added with the identity rule of §5.3, so
// loading a plain GPT-2 folder initialises them and lists them in the log):
//   backward_head.embed_norm.weight [D] 1,  backward_head.latent_proj.weight [r, D] first r rows of I
//   (latent only), backward_head.k_proj.weight [dk, r] I, backward_head.v_proj.weight [dv, r] I,
//   backward_head.q_norm.weight [dv] 1, backward_head.q_proj.weight [dk, dv/H] I per head,
//   backward_head.beta [H] 1.
// Options: config.json's {"attnlab": {"head": {"kind": "backward_head", ...}}}, the table of
// core/config/head_options.h (YAML model.head / model.backward_head.*).
//
// Memory: training saves the vocabulary side (Ê, Ẽ, K, Vv: V × (D [+ r] + dk + dv)) and the row
// statistics; the tiles are scratch. The full [N, V] log-probabilities (padded_logits) exist only in
// a model built without gradients (inference, `attnlab forward`, `attnlab eval lm`); a training model's
// padded_logits() is undefined. Generation caches the vocabulary side on the first logits_rows after
// a forward (every training forward drops the cache: an optimizer step always follows a forward).
// bf16: β is kept in the parameter's dtype and handed to the op as f32 through a host round trip of
// H numbers per call.
#include <memory>
#include <string>

#include "core/config/head_options.h"
#include "core/layers/output_head.h"
#include "core/memory.h"
#include "core/ops/backward_head.h"

namespace attnlab {

class BackwardAttentionHead : public OutputHead {
 public:
  BackwardAttentionHead(const OutputHeadArgs& args, const BackwardHeadOptions& options);

  const std::string& name() const override { return name_; }
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) override;
  void forward(Ctx& ctx, const Tensor& h, const Tensor& targets, double valid_count) override;
  void backward(Ctx& ctx, const Tensor& h, const Tensor& dh) override;
  // log p [B·T, V] (acc dtype) in a model without gradients; undefined otherwise.
  Tensor padded_logits() const override { return logprobs_; }
  int64_t padded_vocab() const override { return vocab_; }
  const Tensor& loss() const override { return loss_; }
  void logits_rows(Ctx& ctx, const Tensor& h, const Tensor& logits, Arena& scratch) const override;
  size_t logits_rows_bytes(DType dt, int64_t N) const override;
  Param* vocab_table() const override { return embed_; }

  const BackwardHeadSpec& spec() const { return spec_; }

 private:
  BackwardHeadParams values() const;
  Tensor beta_acc(Ctx& ctx, const Tensor& beta_buffer) const;

  std::string name_ = "backward_head";
  BackwardHeadSpec spec_;
  bool learn_beta_ = true;
  Param* embed_ = nullptr;
  ParamStore* store_ = nullptr;
  Param *embed_norm_ = nullptr, *latent_proj_ = nullptr, *k_proj_ = nullptr, *v_proj_ = nullptr,
        *q_norm_ = nullptr, *q_proj_ = nullptr, *beta_ = nullptr;
  int64_t vocab_ = 0;

  Tensor saved_buf_, workspace_, row_loss_, loss_, logprobs_, beta_f32_, targets_, dh_zero_;
  BackwardHeadSaved saved_;
  double valid_count_ = 0;
  // Generation's vocabulary side (Ê, Ẽ, K, Vv), computed on the first logits_rows after a forward.
  mutable Buffer gen_vocab_;
  mutable BackwardHeadSaved gen_saved_;
  mutable bool gen_ready_ = false;
};

std::unique_ptr<OutputHead> make_backward_attention_head(const OutputHeadArgs& args);

}  // namespace attnlab
