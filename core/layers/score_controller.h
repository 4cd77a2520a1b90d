#pragma once
// A per-row score controller (METHODS §4.3) as a layer module with its own parameters:
//
//   n = LayerNorm(x) (eps 1e−5)     x = the attention layer's input [B, T, D]
//   z = n Wcᵀ + bc                  Linear(D → Hq), weight and bias zero-initialised
//   info_density:  a = tanh(z)           added to every score of row (b, h, t)   (score_add)
//   temperature:   τ = exp(tanh(z))      multiplies every score of row (b, h, t) (score_mul)
//
// Parameters (saved with the model, ParamInit::added: a pretrained checkpoint lacks them and
// loading initialises them, LayerNorm γ = 1, β = 0, the projection 0):
//   <attention prefix>.controller.norm.weight [D], .norm.bias [D], .proj.weight [Hq, D], .proj.bias [Hq]
// At initialisation a = 0 and τ = 1: the model computes exactly what it did without it.
//
// The information-density controller is a no-op by construction (softmax is invariant to a
// per-row constant: every probability and every gradient equal the plain model's, METHODS §4.3);
// it is kept because it is the seed's method. The temperature controller changes the distribution.
#include <string>

#include "core/arena.h"
#include "core/layers/linear.h"
#include "core/layers/norm.h"
#include "core/ops/score_controller.h"

namespace attnlab {

enum class ControllerChoice : uint8_t { none, info_density, temperature };
// "none", "info_density", "temperature" (throws naming `source` otherwise).
ControllerChoice controller_from_name(const std::string& name, const std::string& source);
const char* controller_name(ControllerChoice c);

class ScoreController {
 public:
  ScoreController() = default;
  ScoreController(const std::string& attention_prefix, ControllerChoice choice, int64_t D, int64_t heads,
                  ParamStore& params);
  bool active() const { return choice_ != ControllerChoice::none; }
  ControllerKind kind() const {
    return choice_ == ControllerChoice::temperature ? ControllerKind::multiplicative : ControllerKind::additive;
  }
  ControllerChoice choice() const { return choice_; }

  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T);
  // x [B, T, D] → out acc [B, Hq, T]; saves what backward needs.
  void forward(Ctx& ctx, const Tensor& x, const Tensor& out);
  // dout acc [B, Hq, T] → parameter gradients (+=) and dx += (the attention input's gradient).
  void backward(Ctx& ctx, const Tensor& dout, const Tensor& x, const Tensor& dx);
  // Generation: the same, buffers from `scratch`, nothing saved.
  void forward_inference(Ctx& ctx, const Tensor& x, const Tensor& out, Arena& scratch) const;
  size_t inference_bytes(DType dt, int64_t rows) const;

 private:
  ControllerChoice choice_ = ControllerChoice::none;
  std::string name_;
  int64_t D_ = 0, H_ = 0;
  LayerNorm norm_;
  Linear proj_;
  Tensor normed_, z_;      // saved [B, T, D], [B, T, Hq]
  Tensor dz_, dnormed_;    // scratch
};

}  // namespace attnlab
