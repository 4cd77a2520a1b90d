#pragma once
// cuBLASLt plans for matmul: the descriptors, layouts and the heuristic's algorithm for one
// (shape, lds, strides, dtypes, flags, pointer alignments) combination, built once and kept in a
// host-side map. The training step repeats the same shapes every step, so after the first step
// no call queries the heuristic or creates a descriptor.
#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <mutex>

#include "core/ops/matmul.h"

namespace attnlab::cuda {

// Everything the descriptors and the heuristic's choice depend on. Pointer alignments are part
// of it because cuBLASLt's heuristic picks kernels by the alignment of A, B, C and the bias.
struct MatmulPlanKey {
  std::array<int64_t, 22> v{};
  bool operator<(const MatmulPlanKey& o) const { return v < o.v; }
};

struct MatmulPlan {
  cublasLtMatmulDesc_t op = nullptr;
  // Column-major view (see matmul.cu): `first` holds B's memory, `second` A's, `out` C's.
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;  // what the chosen algorithm needs (<= the ctx workspace)
  bool has_bias = false;

  MatmulPlan() = default;
  MatmulPlan(const MatmulPlan&) = delete;
  MatmulPlan& operator=(const MatmulPlan&) = delete;
  ~MatmulPlan();
};

// The key for validated, resolved arguments (every ld and stride filled in) on this context.
MatmulPlanKey matmul_plan_key(const Ctx& ctx, const MatmulArgs& a);

// Looks up (or builds, with one heuristic query) the plan for `key`, then calls
// `launch(plan)` with the cache lock held: the launch sets the per-call bias pointer on the
// plan's descriptor, which must not race with another thread using the same plan.
template <class F>
void with_matmul_plan(const Ctx& ctx, const MatmulArgs& a, F&& launch);

// --- implementation details below -------------------------------------------------------------
std::mutex& matmul_plan_mutex();
MatmulPlan& matmul_plan_locked(const Ctx& ctx, const MatmulArgs& a, const MatmulPlanKey& key);

template <class F>
void with_matmul_plan(const Ctx& ctx, const MatmulArgs& a, F&& launch) {
  const MatmulPlanKey key = matmul_plan_key(ctx, a);
  std::lock_guard<std::mutex> lock(matmul_plan_mutex());
  launch(matmul_plan_locked(ctx, a, key));
}

}  // namespace attnlab::cuda
