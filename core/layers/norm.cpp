#include "core/layers/norm.h"

#include "core/nvtx.h"
#include "core/ops/layernorm.h"
#include "core/ops/rmsnorm.h"
#include "core/ops/simple_rmsnorm.h"

namespace attnlab {

namespace {
// Shared by every norm of a model: the CUDA backward's per-block partial sums of dweight (and
// dbias), used only inside one backward call.
constexpr const char* kNormScratch = "norm.dweight_partials";
}  // namespace

LayerNorm::LayerNorm(const std::string& name, Param* weight, Param* bias, double eps)
    : name_(name), weight_(weight), bias_(bias), eps_(eps) {}

void LayerNorm::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  const DType acc = acc_dtype(dt);
  mean_ = p.saved(acc, {rows}, name_.name + ".mean");
  rstd_ = p.saved(acc, {rows}, name_.name + ".rstd");
  const size_t floats = layernorm_backward_scratch_floats(ctx, dt, rows, C);
  scratch_ = floats ? p.scratch(kNormScratch, DType::f32, {int64_t(floats)}) : Tensor();
}

void LayerNorm::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  LayerNormArgs a;
  a.y = y;
  a.mean = mean_;
  a.rstd = rstd_;
  a.x = x;
  a.weight = weight_ ? weight_->value : Tensor();
  a.bias = bias_ ? bias_->value : Tensor();
  a.eps = eps_;
  layernorm_forward(ctx, a);
}

void LayerNorm::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  LayerNormBackwardArgs a;
  a.dx = dx;
  a.dweight = weight_ ? weight_->grad : Tensor();
  a.dbias = bias_ ? bias_->grad : Tensor();
  a.dy = dy;
  a.x = x;
  a.weight = weight_ ? weight_->value : Tensor();
  a.mean = mean_;
  a.rstd = rstd_;
  a.scratch = scratch_;
  a.accumulate_dx = accumulate_dx;
  layernorm_backward(ctx, a);
}

size_t LayerNorm::inference_bytes(DType dt, int64_t rows) {
  return 2 * Arena::aligned(size_t(rows) * dtype_size(acc_dtype(dt)));
}

void LayerNorm::forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const {
  const int64_t rows = x.numel() / x.dim(x.ndim - 1);
  LayerNormArgs a;
  a.y = y;
  a.mean = scratch.alloc(acc_dtype(x.dtype), {rows}, "norm.inference_mean");
  a.rstd = scratch.alloc(acc_dtype(x.dtype), {rows}, "norm.inference_rstd");
  a.x = x;
  a.weight = weight_ ? weight_->value : Tensor();
  a.bias = bias_ ? bias_->value : Tensor();
  a.eps = eps_;
  layernorm_forward(ctx, a);
}

RmsNorm::RmsNorm(const std::string& name, Param* weight, double eps) : name_(name), weight_(weight), eps_(eps) {}

void RmsNorm::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  rstd_ = p.saved(acc_dtype(dt), {rows}, name_.name + ".rstd");
  const size_t floats = rmsnorm_backward_scratch_floats(ctx, dt, rows, C);
  scratch_ = floats ? p.scratch(kNormScratch, DType::f32, {int64_t(floats)}) : Tensor();
}

void RmsNorm::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  RmsNormArgs a;
  a.y = y;
  a.rstd = rstd_;
  a.x = x;
  a.weight = weight_ ? weight_->value : Tensor();
  a.eps = eps_;
  rmsnorm_forward(ctx, a);
}

void RmsNorm::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  RmsNormBackwardArgs a;
  a.dx = dx;
  a.dweight = weight_ ? weight_->grad : Tensor();
  a.dy = dy;
  a.x = x;
  a.weight = weight_ ? weight_->value : Tensor();
  a.rstd = rstd_;
  a.scratch = scratch_;
  a.accumulate_dx = accumulate_dx;
  rmsnorm_backward(ctx, a);
}

size_t RmsNorm::inference_bytes(DType dt, int64_t rows) {
  return Arena::aligned(size_t(rows) * dtype_size(acc_dtype(dt)));
}

void RmsNorm::forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const {
  const int64_t rows = x.numel() / x.dim(x.ndim - 1);
  RmsNormArgs a;
  a.y = y;
  a.rstd = scratch.alloc(acc_dtype(x.dtype), {rows}, "norm.inference_rstd");
  a.x = x;
  a.weight = weight_ ? weight_->value : Tensor();
  a.eps = eps_;
  rmsnorm_forward(ctx, a);
}

SimpleRmsNorm::SimpleRmsNorm(const std::string& name, Param* weight, double eps)
    : name_(name), weight_(weight), eps_(eps) {}

void SimpleRmsNorm::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  den_ = p.saved(acc_dtype(dt), {rows}, name_.name + ".den");
  const size_t floats = simple_rmsnorm_backward_scratch_floats(ctx, dt, rows, C);
  scratch_ = floats ? p.scratch(kNormScratch, DType::f32, {int64_t(floats)}) : Tensor();
}

void SimpleRmsNorm::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  simple_rmsnorm_forward(ctx, {y, den_, x, weight_->value, eps_});
}

void SimpleRmsNorm::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  SimpleRmsNormBackwardArgs a;
  a.dx = dx;
  a.dweight = weight_->grad;
  a.dy = dy;
  a.x = x;
  a.weight = weight_->value;
  a.den = den_;
  a.scratch = scratch_;
  a.eps = eps_;
  a.accumulate_dx = accumulate_dx;
  simple_rmsnorm_backward(ctx, a);
}

void SimpleRmsNorm::forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const {
  const int64_t rows = x.numel() / x.dim(x.ndim - 1);
  simple_rmsnorm_forward(ctx, {y, scratch.alloc(acc_dtype(x.dtype), {rows}, "norm.inference_den"), x,
                               weight_->value, eps_});
}

Norm Norm::layer_norm(const std::string& name, Param* weight, Param* bias, double eps) {
  Norm n;
  n.ln_ = LayerNorm(name, weight, bias, eps);
  return n;
}
Norm Norm::rms_norm(const std::string& name, Param* weight, double eps) {
  Norm n;
  n.kind_ = Kind::rms;
  n.rms_norm_ = RmsNorm(name, weight, eps);
  return n;
}
Norm Norm::simple_rms_norm(const std::string& name, Param* weight, double eps) {
  Norm n;
  n.kind_ = Kind::simple;
  n.simple_ = SimpleRmsNorm(name, weight, eps);
  return n;
}

void Norm::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t rows, int64_t C) {
  if (kind_ == Kind::rms) rms_norm_.plan(p, ctx, dt, rows, C);
  else if (kind_ == Kind::simple) simple_.plan(p, ctx, dt, rows, C);
  else ln_.plan(p, ctx, dt, rows, C);
}
void Norm::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  if (kind_ == Kind::rms) rms_norm_.forward(ctx, x, y);
  else if (kind_ == Kind::simple) simple_.forward(ctx, x, y);
  else ln_.forward(ctx, x, y);
}
void Norm::forward_inference(Ctx& ctx, const Tensor& x, const Tensor& y, Arena& scratch) const {
  if (kind_ == Kind::rms) rms_norm_.forward_inference(ctx, x, y, scratch);
  else if (kind_ == Kind::simple) simple_.forward_inference(ctx, x, y, scratch);
  else ln_.forward_inference(ctx, x, y, scratch);
}
size_t Norm::inference_bytes(DType dt, int64_t rows) const {
  // RMSNorm and SimpleRMSNorm keep one statistic per row, LayerNorm two.
  return kind_ == Kind::layer ? LayerNorm::inference_bytes(dt, rows) : RmsNorm::inference_bytes(dt, rows);
}
void Norm::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx) {
  if (kind_ == Kind::rms) rms_norm_.backward(ctx, dy, x, dx, accumulate_dx);
  else if (kind_ == Kind::simple) simple_.backward(ctx, dy, x, dx, accumulate_dx);
  else ln_.backward(ctx, dy, x, dx, accumulate_dx);
}

}  // namespace attnlab
