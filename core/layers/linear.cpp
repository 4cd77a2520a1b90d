#include "core/layers/linear.h"

#include "core/ops/matmul.h"

namespace attnlab {

Linear::Linear(Param* weight, Param* bias, int64_t row_begin, int64_t rows) : w_(weight), b_(bias) {
  CHECK(w_ && w_->shape.size() == 2, "Linear: the weight must be a matrix [out, in]");
  const int64_t out = w_->shape[0];
  rows_ = rows < 0 ? out - row_begin : rows;
  row_begin_ = row_begin;
  CHECK(row_begin_ >= 0 && rows_ > 0 && row_begin_ + rows_ <= out, "Linear over '", w_->name, "': rows [",
        row_begin_, ", ", row_begin_ + rows_, ") outside its ", out, " rows");
  CHECK(!b_ || (b_->shape.size() == 1 && b_->shape[0] == out), "Linear: bias '", b_ ? b_->name : "",
        "' must be [", out, "] like the rows of '", w_->name, "'");
}

int64_t Linear::in_features() const { return w_->shape[1]; }

Tensor Linear::band(const Tensor& t) const {
  if (!t.defined()) return Tensor();
  return t.slice0(row_begin_, row_begin_ + rows_);
}

Tensor Linear::weight() const { return band(w_->value); }
Tensor Linear::bias() const { return b_ ? band(b_->value) : Tensor(); }
Tensor Linear::weight_grad() const { return band(w_->grad); }
Tensor Linear::bias_grad() const { return b_ ? band(b_->grad) : Tensor(); }

void Linear::forward(Ctx& ctx, const Tensor& x, const Tensor& y) const {
  LinearArgs a;
  a.y = y;
  a.x = x;
  a.w = weight();
  a.bias = bias();
  linear_forward(ctx, a);
}

void Linear::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx) const {
  LinearBackwardArgs a;
  a.dy = dy;
  a.x = x;
  a.w = weight();
  a.dx = dx;
  a.dw = weight_grad();
  a.dbias = bias_grad();
  a.accumulate_dx = accumulate_dx;
  if (!a.dx.defined() && !a.dw.defined() && !a.dbias.defined()) return;
  linear_backward(ctx, a);
}

}  // namespace attnlab
