#pragma once
// The feed-forward block of a decoder layer.
//   GELU (GPT-2):   y = c_proj(gelu(c_fc(x)))              c_fc D→I and c_proj I→D with biases (P8, P1)
//   SwiGLU (Qwen):  y = down(silu(gate(x)) ⊙ up(x))        no biases (P7)
// Saved per layer: GELU — the pre-activation and the activation (c_proj's input); SwiGLU — gate,
// up and h (down's input). The input x is the caller's. Backward gradients of the [B, T, I]
// intermediates are scratch shared by every layer.
#include <cstdint>
#include <string>

#include "core/arena.h"
#include "core/layers/activations.h"
#include "core/layers/dropout.h"
#include "core/layers/layer_name.h"
#include "core/layers/linear.h"
#include "core/ops/gelu.h"

namespace attnlab {

class Mlp {
 public:
  Mlp() = default;
  // inner_dropout: dropout on the activation before c_proj (the from-scratch decoders' FFN, METHODS §3.5).
  static Mlp gelu(const std::string& name, Linear fc, Linear proj, GeluKind kind, double inner_dropout = 0);
  static Mlp swiglu(const std::string& name, Linear gate, Linear up, Linear down);

  void plan(ActivationPlanner& p, DType dt, int64_t B, int64_t T);
  // x, y [B, T, D].
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y);
  // Inference (generation): the [B, T, I] intermediates come from `scratch`; nothing is saved.
  void forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const;
  size_t inference_bytes(DType dt, int64_t rows) const;
  // dx [B, T, D] overwritten (must not alias dy); parameter gradients accumulate.
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx);

  bool is_swiglu() const { return swiglu_; }
  void set_training(bool training) { drop_.set_training(training); }
  int64_t hidden() const { return in_.out_features(); }

 private:
  // The forward on the given buffers; `drop` (training) applies the activation dropout.
  void run(Ctx& ctx, const Tensor& x, const Tensor& y, const Tensor& pre, const Tensor& act, const Tensor& up_out,
           Dropout* drop) const;
  LayerName name_;
  bool swiglu_ = false;
  GeluKind kind_ = GeluKind::tanh_approx;
  Linear in_;    // c_fc, or gate_proj
  Linear up_;    // up_proj (SwiGLU only)
  Linear out_;   // c_proj, or down_proj
  Dropout drop_; // on the activation (GELU only; p = 0 for GPT-2 and Qwen)
  Tensor pre_, act_, up_out_;        // saved: c_fc out / gate, gelu out / h, up out
  Tensor dact_, dpre_, dup_;         // scratch
};

}  // namespace attnlab
