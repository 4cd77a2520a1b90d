#pragma once
// Helpers shared by the benchmark entries: random inputs (never zeros), upload, verification.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/memory.h"
#include "tools/bench/bench.h"

namespace attnlab::bench {

// The dtypes timed on this context: bf16 and f32 on CUDA, f32 on the CPU.
inline std::vector<DType> bench_dtypes(const Ctx& c) {
  return c.is_cuda() ? std::vector<DType>{DType::bf16, DType::f32} : std::vector<DType>{DType::f32};
}
inline std::string dtype_label(DType t) { return dtype_name(t); }

inline std::vector<double> random_values(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 g(seed * 0x9E3779B97F4A7C15ull + 1);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
inline std::vector<double> round_values(DType dt, const std::vector<double>& v) {
  std::vector<double> o(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    o[i] = dt == DType::bf16 ? round_bf16(float(v[i])) : dt == DType::f32 ? double(float(v[i])) : v[i];
  return o;
}
inline Buffer upload(Ctx& c, DType dt, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
  Buffer b(c.device, dt, dims);
  from_host_f64(c, b.t(), v);
  return b;
}
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double n = 0, d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    n += (a[i] - b[i]) * (a[i] - b[i]);
    d += b[i] * b[i];
  }
  return std::sqrt(n) / std::max(std::sqrt(d), 1e-30);
}
// Marks the run failed when the error is beyond the dtype's tolerance.
inline void verify(Runner& r, const Row& row, DType dt, double f32_tol = 1e-4, double bf16_tol = 2e-2) {
  double tol = dt == DType::bf16 ? bf16_tol : f32_tol;
  if (!(row.rel_err <= tol))
    r.fail(row.op + " " + row.shape + ": rel_err " + std::to_string(row.rel_err) + " > " + std::to_string(tol));
}

}  // namespace attnlab::bench
