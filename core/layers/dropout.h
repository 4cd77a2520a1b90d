#pragma once
// Inverted dropout as a layer, over the Philox dropout op: active only in training mode with p > 0;
// otherwise both directions do nothing at all. Forward works in place (the tensors it is applied to
// are branch outputs that no backward reads); it reserves its Philox counters from the context and
// keeps the offset, which is all its backward needs to regenerate the mask.
#include <cstdint>
#include <string>

#include "core/layers/layer_name.h"
#include "core/ctx.h"
#include "core/io/hf_config.h"

namespace attnlab {

// GPT-2's dropout probabilities from config.json (embd_pdrop, resid_pdrop, attn_pdrop; HF's default 0.1
// when the key is absent); 0 for the other architectures (Qwen has none).
double config_dropout(const ModelConfig& c, const char* key);

class Dropout {
 public:
  Dropout() = default;
  Dropout(const std::string& name, double p);

  void set_training(bool training) { training_ = training; }
  bool active() const { return training_ && p_ > 0; }
  double p() const { return p_; }

  // x ← x · mask / (1 − p), in place.
  void forward(Ctx& ctx, const Tensor& x);
  // Whether the last forward applied a mask (the backward must then apply it too).
  bool applied() const { return applied_; }
  // dx = dy · mask / (1 − p) (dx may be dy). Only when applied().
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& dx);

 private:
  LayerName name_;
  double p_ = 0;
  bool training_ = false;
  bool applied_ = false;
  uint64_t rng_offset_ = 0;
};

}  // namespace attnlab
