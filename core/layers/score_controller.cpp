#include "core/layers/score_controller.h"

namespace attnlab {

ControllerChoice controller_from_name(const std::string& name, const std::string& source) {
  if (name == "none") return ControllerChoice::none;
  if (name == "info_density") return ControllerChoice::info_density;
  if (name == "temperature") return ControllerChoice::temperature;
  FAIL_WITH("config '", source, "': attnlab.attention.controller is '", name,
            "'; use none, info_density (per-row additive, METHODS §4.3) or temperature (per-row multiplicative)");
}

const char* controller_name(ControllerChoice c) {
  switch (c) {
    case ControllerChoice::none: return "none";
    case ControllerChoice::info_density: return "info_density";
    case ControllerChoice::temperature: return "temperature";
  }
  return "?";
}

ScoreController::ScoreController(const std::string& prefix, ControllerChoice choice, int64_t D, int64_t heads,
                                 ParamStore& ps)
    : choice_(choice), name_(prefix + ".controller"), D_(D), H_(heads) {
  if (!active()) return;
  const std::string& p = name_;
  Param* nw = &ps.add(p + ".norm.weight", {D});
  Param* nb = &ps.add(p + ".norm.bias", {D});
  Param* pw = &ps.add(p + ".proj.weight", {heads, D});
  Param* pb = &ps.add(p + ".proj.bias", {heads});
  nw->init = ParamInit::ones_added();
  nb->init = ParamInit::zeros_added();
  pw->init = ParamInit::zeros_added();
  pb->init = ParamInit::zeros_added();
  norm_ = LayerNorm(p + ".norm", nw, nb, 1e-5);
  proj_ = Linear(pw, pb);
}

void ScoreController::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) {
  if (!active()) return;
  normed_ = p.saved(dt, {B, T, D_}, name_ + ".normed");
  z_ = p.saved(dt, {B, T, H_}, name_ + ".z");
  norm_.plan(p, ctx, dt, B * T, D_);
  dz_ = p.scratch("controller.dz", dt, {B, T, H_});
  dnormed_ = p.scratch("controller.dnormed", dt, {B, T, D_});
}

void ScoreController::forward(Ctx& ctx, const Tensor& x, const Tensor& out) {
  norm_.forward(ctx, x, normed_);
  proj_.forward(ctx, normed_, z_);
  score_controller_forward(ctx, {kind(), z_, out});
}

void ScoreController::backward(Ctx& ctx, const Tensor& dout, const Tensor& x, const Tensor& dx) {
  score_controller_backward(ctx, {kind(), z_, dout, dz_});
  proj_.backward(ctx, dz_, normed_, dnormed_, false);
  norm_.backward(ctx, dnormed_, x, dx, true);
}

size_t ScoreController::inference_bytes(DType dt, int64_t rows) const {
  if (!active()) return 0;
  return Arena::aligned(size_t(rows * D_) * dtype_size(dt)) + Arena::aligned(size_t(rows * H_) * dtype_size(dt)) +
         LayerNorm::inference_bytes(dt, rows);
}

void ScoreController::forward_inference(Ctx& ctx, const Tensor& x, const Tensor& out, Arena& scratch) const {
  const int64_t B = x.dim(0), T = x.dim(1);
  Tensor normed = scratch.alloc(x.dtype, {B, T, D_}, "controller.inference_normed");
  Tensor z = scratch.alloc(x.dtype, {B, T, H_}, "controller.inference_z");
  norm_.forward_inference(ctx, x, normed, scratch);
  proj_.forward(ctx, normed, z);
  score_controller_forward(ctx, {kind(), z, out});
}

}  // namespace attnlab
