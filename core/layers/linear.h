#pragma once
// Linear layer Y = X Wᵀ + b (METHODS P1) over the linear op, with W [out, in] in the runtime.
//
// A Linear may use a band of rows of a larger weight: GPT-2's fused c_attn [3D, D] is one
// parameter (one checkpoint tensor) that the attention layer uses as three Linears over rows
// [0, D), [D, 2D), [2D, 3D) of the weight, its bias and its gradients. The Linear itself saves
// nothing: its backward takes the forward input from the caller, who keeps it anyway.
#include <cstdint>

#include "core/layers/param.h"

namespace attnlab {

class Linear {
 public:
  Linear() = default;
  // Rows [row_begin, row_begin + rows) of weight (and bias); rows = -1: all of them.
  Linear(Param* weight, Param* bias, int64_t row_begin = 0, int64_t rows = -1);

  int64_t in_features() const;
  int64_t out_features() const { return rows_; }

  // y [.., out] = x [.., in] Wᵀ + b.
  void forward(Ctx& ctx, const Tensor& x, const Tensor& y) const;
  // dW += dyᵀ x, db += Σ dy (skipped when frozen); dx = dy W (+= when accumulate_dx; undefined dx:
  // skipped, e.g. below the first trainable layer).
  void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx, bool accumulate_dx) const;

  // The band of the parameter's value / gradient this Linear uses (undefined grad when frozen).
  Tensor weight() const;
  Tensor bias() const;
  Tensor weight_grad() const;
  Tensor bias_grad() const;
  Param* weight_param() const { return w_; }
  Param* bias_param() const { return b_; }

 private:
  Tensor band(const Tensor& t) const;
  Param* w_ = nullptr;
  Param* b_ = nullptr;
  int64_t row_begin_ = 0, rows_ = 0;
};

}  // namespace attnlab
