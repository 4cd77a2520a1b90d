#pragma once
// What the trainer (train/) needs of a model: its parameters, the planned forward/backward of a
// causal LM with a loss, and how it writes and reads its weights in a checkpoint folder. Both the
// HF-config models (Model) and the from-scratch decoders of METHODS §3 (ScratchDecoder) implement
// it, so one trainer trains either.
//
// Step: params().zero_grads(ctx); forward(ctx, ids, targets, n); backward(ctx) (see Model).
#include <cstdint>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "core/layers/param.h"
#include "core/tensor.h"

namespace attnlab {

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;

  virtual ParamStore& params() = 0;
  virtual const ParamStore& params() const = 0;
  virtual Device device() const = 0;
  virtual DType dtype() const = 0;

  // Dropout on (true) or off.
  virtual void set_training(bool training) = 0;
  // Activations for batches of B sequences of T tokens; forward/backward then take [B, T].
  virtual void plan(Ctx& ctx, int64_t B, int64_t T) = 0;
  // ids, targets [B, T] i32 (targets kIgnoreIndex: no loss); returns the loss Σ / valid_count as
  // a [1] device tensor (undefined without targets).
  virtual Tensor forward(Ctx& ctx, const Tensor& ids, const Tensor& targets, double valid_count) = 0;
  // Accumulates the gradients of the last forward's loss.
  virtual void backward(Ctx& ctx) = 0;
  // Called by backward as blocks finish (param.h: every gradient of the parameters registered at
  // or after `first` is final), so data parallelism can reduce them while the backward goes on. A
  // model that never calls it still works: its gradients are reduced after the backward.
  virtual void set_grad_ready_hook(GradReadyHook) {}
  // Between forward and backward: the logits buffer [B, T, Vp] (columns ≥ V are padding, not
  // logits), and the [B, T, V] logits on the host.
  virtual Tensor padded_logits() const = 0;
  virtual std::vector<double> logits_f64(Ctx& ctx) const = 0;

  virtual int64_t vocab_size() const = 0;
  virtual int64_t num_layers() const = 0;
  // Σ over heads of the query·key width (heads × head_dim): the T-dependent attention FLOPs of
  // PERFORMANCE.md's 6N + 6·L·width·T per token.
  virtual int64_t attention_width() const = 0;
  // One line for the trainer's summary: architecture and sizes.
  virtual std::string describe() const = 0;

  // The weights into / out of a checkpoint folder (the folder exists). Model writes an HF folder
  // (config.json + model.safetensors), ScratchDecoder its own model.safetensors.
  virtual void save_weights(Ctx& ctx, const std::string& folder) const = 0;
  virtual void load_weights(Ctx& ctx, const std::string& folder) = 0;
};

}  // namespace attnlab
