#pragma once
// Shared by LayerNorm and RMSNorm: both normalise rows of C elements (C = last dimension) and
// validate their arguments the same way.
#include <cstdint>

#include "core/tensor.h"

namespace attnlab {

// The CUDA kernels keep a row in registers (at most 8 elements per thread, 1024 threads).
inline constexpr int64_t kRowNormMaxC = 8192;

struct RowNormShape {
  int64_t rows = 0, C = 0;
};

// rows × C of `x` (C = its last dim); throws when x is not a float tensor with C ≥ 1.
RowNormShape row_norm_shape(const char* op, const Tensor& x);
// Throws unless `t` holds exactly `n` elements of dtype `dt`.
void check_row_norm_tensor(const char* op, const Tensor& t, int64_t n, DType dt, const char* role);

}  // namespace attnlab
