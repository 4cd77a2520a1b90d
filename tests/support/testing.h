#pragma once
// Shared test helpers: GPU gating, random inputs, device buffers, error metrics, and the
// finite-difference gradient check.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "core/memory.h"

namespace attnlab::test {

// Skips the current test, with the reason, when no CUDA device is usable.
#define ATTNLAB_REQUIRE_GPU()                                                          \
  do {                                                                                 \
    auto st_ = ::attnlab::cuda_status();                                               \
    if (!st_.usable) GTEST_SKIP() << "needs a CUDA GPU; not usable here: " << st_.reason; \
  } while (0)

// One CUDA context shared by the GPU tests of a binary (created on first use).
Ctx& gpu_ctx();
inline Ctx& cpu_ctx() {
  static Ctx c = Ctx::make_cpu(1234);
  return c;
}

std::vector<double> rand_uniform(size_t n, double lo, double hi, uint64_t seed);
std::vector<double> rand_normal(size_t n, double stddev, uint64_t seed);
std::vector<int32_t> rand_ints(size_t n, int32_t lo, int32_t hi_exclusive, uint64_t seed);

// A buffer on `dev` holding `values` converted to `dt` (bf16 rounds).
Buffer make_tensor(Device dev, DType dt, std::initializer_list<int64_t> dims,
                   const std::vector<double>& values, const char* name = "");
// A buffer on `dev` filled with 0xFF bytes (NaN): elements a kernel fails to write stay NaN.
Buffer make_poisoned(Device dev, DType dt, std::initializer_list<int64_t> dims, const char* name = "");
Buffer make_ids(Device dev, std::initializer_list<int64_t> dims, const std::vector<int32_t>& ids,
                const char* name = "");
// Rounds each value as the given dtype would store it (identity for f32 within float range).
std::vector<double> round_as(DType dt, const std::vector<double>& v);

// ||a - b|| / max(||b||, tiny); +inf when any element of a is NaN or Inf.
double rel_err(const std::vector<double>& a, const std::vector<double>& b);
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b);

// Tolerance for comparing a GPU result against the CPU reference, by the GPU dtype.
inline double gpu_tol(DType dt) { return dt == DType::bf16 ? 1e-2 : 1e-5; }

// Central-difference gradient check in double. `loss` recomputes a scalar from the current
// contents of the inputs. For each input, up to `max_probe` elements (spread evenly) are
// perturbed by ±h and the numerical derivative is compared with `analytic`.
// Returns the largest relative error ‖num − ana‖ / max(‖num‖, ‖ana‖, 1e-12) over the inputs.
struct GradInput {
  std::string name;
  double* data;
  size_t n;
  const std::vector<double>* analytic;
};
double fd_check(const std::function<double()>& loss, const std::vector<GradInput>& inputs,
                double h = 1e-6, size_t max_probe = 64, std::string* report = nullptr);

// Records the largest finite-difference error per op in tests/fd_errors.txt under the build dir,
// so the numbers can be quoted in notes.
void record_fd_error(const std::string& op, double err);

}  // namespace attnlab::test
