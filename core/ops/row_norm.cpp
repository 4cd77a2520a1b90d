#include "core/ops/row_norm.h"

#include "core/error.h"

namespace attnlab {

RowNormShape row_norm_shape(const char* op, const Tensor& x) {
  CHECK(x.defined() && x.ndim >= 1, op, ": x must be a tensor with at least one dim, got '", x.name, "' ",
        x.shape_str());
  CHECK(x.dtype == DType::f32 || x.dtype == DType::f64 || x.dtype == DType::bf16, op,
        ": x must be f32, f64 or bf16, got ", dtype_name(x.dtype));
  RowNormShape s;
  s.C = x.dim(-1);
  CHECK(s.C >= 1, op, ": the normalised (last) dim must be >= 1, got x ", x.shape_str());
  s.rows = x.numel() / s.C;
  return s;
}

void check_row_norm_tensor(const char* op, const Tensor& t, int64_t n, DType dt, const char* role) {
  CHECK(t.numel() == n && t.dtype == dt, op, ": ", role, " '", t.name, "' must hold ", n, " ", dtype_name(dt),
        " elements, got ", dtype_name(t.dtype), t.shape_str());
}

}  // namespace attnlab
