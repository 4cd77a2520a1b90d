#include "core/layers/dropout.h"

#include "core/nvtx.h"
#include "core/ops/dropout.h"

namespace attnlab {

double config_dropout(const ModelConfig& c, const char* key) {
  if (c.arch != ModelArch::gpt2) return 0.0;
  if (c.raw.is_object()) {
    auto it = c.raw.find(key);
    if (it != c.raw.end() && !it->is_null()) {
      CHECK(it->is_number(), "config '", c.source, "': ", key, " must be a number, got ", it->dump());
      return it->get<double>();
    }
  }
  return 0.1;
}


Dropout::Dropout(const std::string& name, double p) : name_(name), p_(p) {
  CHECK(p >= 0 && p < 1, "dropout '", name, "': probability ", p, " outside [0, 1)");
}

void Dropout::forward(Ctx& ctx, const Tensor& x) {
  applied_ = active();
  if (!applied_) return;
  NVTX_RANGE(ctx, name_.forward.c_str());
  rng_offset_ = ctx.take_rng(uint64_t(x.numel()));
  DropoutArgs a;
  a.y = x;
  a.x = x;
  a.p = p_;
  a.rng_offset = rng_offset_;
  dropout_forward(ctx, a);
}

void Dropout::backward(Ctx& ctx, const Tensor& dy, const Tensor& dx) {
  CHECK(applied_, "dropout '", name_.name, "': backward without a masked forward");
  NVTX_RANGE(ctx, name_.backward.c_str());
  DropoutBackwardArgs a;
  a.dx = dx;
  a.dy = dy;
  a.p = p_;
  a.rng_offset = rng_offset_;
  dropout_backward(ctx, a);
}

}  // namespace attnlab
