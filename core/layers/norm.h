#pragma once
// Normalisation layers over the layernorm / rmsnorm ops (METHODS P2, P3).
//
// Both save their per-row statistics (mean and rstd, or rstd) in activation slots; the input x is
// the caller's (the residual stream, or a projection output), passed again to backward. RmsNorm
// also serves Qwen3's per-head q_norm / k_norm: x [B, T, H, d] is normalised over its last dim, so
// rows = B·T·H and the [d] weight is shared by every head (its gradient sums over heads).
#include <string>

#include "core/arena.h"
#include "core/layers/activations.h"
#include "core/layers/layer_name.h"
#include "core/layers/param.h"

namespace attnlab {

class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(const std::string& name, Param* weight, Param* bias, double eps);
  // Inference: the statistics go to `scratch` (nothing saved for a backward).
  void forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const;
  static size_t inference_bytes(DType dt, int64_t rows);

  // rows × C of dtype dt; the CUDA backward's partial sums are shared scratch.
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C);
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y);
  // dx = ∂/∂x (overwrite, or += with accumulate_dx: the residual stream); dγ, dβ += (if trainable).
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx);

 private:
  LayerName name_;
  Param* weight_ = nullptr;
  Param* bias_ = nullptr;
  double eps_ = 1e-5;
  Tensor mean_, rstd_, scratch_;
};

class RmsNorm {
 public:
  RmsNorm() = default;
  RmsNorm(const std::string& name, Param* weight, double eps);
  void forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const;
  static size_t inference_bytes(DType dt, int64_t rows);

  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C);
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y);
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx);

 private:
  LayerName name_;
  Param* weight_ = nullptr;
  double eps_ = 1e-6;
  Tensor rstd_, scratch_;
};

// SimpleRMSNorm of the seed-002 differential model (METHODS §3.5): y = s ⊙ x / (‖x‖/√C + eps).
class SimpleRmsNorm {
 public:
  SimpleRmsNorm() = default;
  SimpleRmsNorm(const std::string& name, Param* weight, double eps);
  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C);
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y);
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx);
  void forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const;

 private:
  LayerName name_;
  Param* weight_ = nullptr;
  double eps_ = 1e-8;
  Tensor den_, scratch_;
};
// The model's normalisation: LayerNorm (GPT-2), RMSNorm (Qwen) or SimpleRMSNorm (the seed preset's
// differential decoder), chosen at construction. Two Norms over the same parameters are a shared
// norm (the seed decoders' one norm per block): each keeps its own statistics, both add into the
// one gradient.
class Norm {
 public:
  Norm() = default;
  static Norm layer_norm(const std::string& name, Param* weight, Param* bias, double eps);
  static Norm rms_norm(const std::string& name, Param* weight, double eps);
  static Norm simple_rms_norm(const std::string& name, Param* weight, double eps);
  // Inference (generation): the statistics come from `scratch`; nothing is saved.
  void forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const;
  size_t inference_bytes(DType dt, int64_t rows) const;

  void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C);
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y);
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx);

 private:
  enum class Kind : uint8_t { layer, rms, simple };
  Kind kind_ = Kind::layer;
  LayerNorm ln_;
  RmsNorm rms_norm_;
  SimpleRmsNorm simple_;
};

}  // namespace attnlab
