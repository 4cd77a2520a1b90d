#pragma once
// Helpers shared by the LayerNorm and RMSNorm GPU tests: device tensors that may start at an
// element offset (to force the kernels' unaligned scalar path) and a scaled error metric.
#include <cmath>

#include "support/testing.h"

namespace attnlab::test {

// A device tensor viewed `shift` elements into its buffer. Empty `values` = poisoned (NaN).
struct ShiftedTensor {
  Buffer buf;
  Tensor t;
};

inline ShiftedTensor shifted_tensor(DType dt, int64_t rows, int64_t C, const std::vector<double>& values, int shift,
                                    bool two_dims = true) {
  ShiftedTensor s;
  s.buf = Buffer(Device::cuda, dt, {rows * C + shift});
  char* p = static_cast<char*>(s.buf.t().data) + size_t(shift) * dtype_size(dt);
  s.t = two_dims ? Tensor(p, dt, Device::cuda, {rows, C}) : Tensor(p, dt, Device::cuda, {rows * C});
  if (values.empty()) {
    poison_tensor(gpu_ctx(), s.buf.t());
    gpu_ctx().synchronize();
  } else {
    from_host_f64(gpu_ctx(), s.t, values);
  }
  return s;
}

// ‖got − ref‖ / max(‖ref‖, ‖scale‖): the error relative to the size of the terms that were
// combined, so a result that cancels to almost nothing (RMSNorm dx at C = 1) is judged against
// what fp32 can resolve, not against its own tiny size. +inf on NaN.
inline double scaled_err(const std::vector<double>& got, const std::vector<double>& ref,
                         const std::vector<double>& scale) {
  double num = 0, den = 0, sc = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
    sc += scale[i] * scale[i];
  }
  return std::sqrt(num) / std::max({std::sqrt(den), std::sqrt(sc), 1e-30});
}

}  // namespace attnlab::test
