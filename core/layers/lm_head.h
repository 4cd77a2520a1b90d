#pragma once
// The LM head with the fused cross-entropy (METHODS P1, P10): logits = h Eᵀ (E [Vp, D]: lm_head.weight,
// or the token embedding when tied), then per-row loss and log-sum-exp, then the mean over the
// caller's count of target tokens, all on the device.
//
// Padded vocabulary: E may carry Param::pad_rows zero rows (Vp = V + pad_rows, a multiple of 64:
// every logits row then starts 128-byte aligned, which cuBLASLt's fast GEMM kernels need; with
// V = 50257 the head's GEMMs run ~6x slower unpadded, docs/gpu-status.md). The logits buffer is
// [B·T, Vp]; the loss and its gradient use only the first V columns (cross_entropy's `vocab`), and
// the gradient's padding columns are 0, so the padding rows of E get exactly zero gradient.
//
// Targets are already shifted: targets[b, t] is the token position t must predict (HF shifts
// labels inside the model; callers here pass ids[b, t + 1], and kIgnoreIndex for the last position
// and for masked tokens). Backward writes the logits' gradient over the logits buffer (in place),
// then runs the head's GEMMs: the logits are valid from forward until backward.
#include <cstdint>
#include <string>

#include "core/layers/activations.h"
#include "core/layers/layer_name.h"
#include "core/layers/linear.h"
#include "core/layers/output_head.h"

namespace attnlab {

// The "lm_head" of the head slot (core/layers/output_head.h).
class LmHead : public OutputHead {
 public:
  LmHead() = default;
  LmHead(const std::string& name, Param* weight);

  const std::string& name() const override { return name_.name; }
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) override;
  // h [B, T, D] → logits [B·T, V]; with targets ([B, T] i32, defined) also the loss:
  // Σ_rows loss / valid_count into loss() ([1], acc dtype). valid_count must be > 0 then.
  void forward(Ctx& ctx, const Tensor& h, const Tensor& targets, double valid_count) override;
  // dh [B, T, D] overwritten; dE += (when trainable). Needs a forward with targets.
  void backward(Ctx& ctx, const Tensor& h, const Tensor& dh) override;
  Tensor padded_logits() const override { return logits_; }
  // Generation: the V real rows of E only, so no sampler can pick a padding id, and decode's few
  // rows gain nothing from the aligned stride the training head pads for.
  void logits_rows(Ctx& ctx, const Tensor& h, const Tensor& logits, Arena& scratch) const override;
  size_t logits_rows_bytes(DType dt, int64_t N) const override { return 0; }
  Param* vocab_table() const override { return proj_.weight_param(); }

  const Tensor& logits() const { return logits_; }  // [B·T, Vp]: columns ≥ V are padding
  int64_t vocab() const { return vocab_; }          // V (the classes)
  int64_t padded_vocab() const override { return proj_.out_features(); }  // Vp
  const Tensor& loss() const override { return loss_; }      // [1] acc
  Param* weight() const { return proj_.weight_param(); }

 private:
  LayerName name_;
  Linear proj_;
  Tensor logits_, row_loss_, lse_, loss_;
  Tensor targets_;
  double valid_count_ = 0;
  int64_t vocab_ = 0;
};

// The factory registered as "lm_head": E = lm_head.weight (untied) or the token embedding (tied).
std::unique_ptr<OutputHead> make_lm_head(const OutputHeadArgs& args);
// "lm_head_untied": lm_head.weight of its own, declared ParamInit::copy of the token embedding (a tied
// checkpoint starts it as the tied head; a folder saved with it reloads it).
std::unique_ptr<OutputHead> make_lm_head_untied(const OutputHeadArgs& args);

}  // namespace attnlab
