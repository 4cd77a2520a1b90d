#pragma once
// CPU-only helpers of the row norms (LayerNorm, RMSNorm, SimpleRMSNorm). Kept out of row_norm.h,
// which the CUDA files include, because of the OpenMP pragma.
#include <algorithm>
#include <cstdint>

namespace attnlab {

// out[c] += Σ_r term(r, c) for every column c: the weight/bias gradients of the row norms on the
// CPU. Parallel over column blocks, rows summed in order inside each, so the result does not
// depend on the number of threads.
template <class A, class Term>
void add_column_sums(A* out, int64_t rows, int64_t C, Term term) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (rows * C > 65536)
  for (int64_t cb = 0; cb < blocks; ++cb) {
    const int64_t c0 = cb * kCols, c1 = std::min(C, c0 + kCols);
    A acc[kCols] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += term(r, c);
    for (int64_t c = c0; c < c1; ++c) out[c] += acc[c - c0];
  }
}

}  // namespace attnlab
