#pragma once
// Which kernels the fused attention backend runs for a call (issue 19). On CUDA there are two:
//   mma   the bf16 tensor-core kernels (cuda/attention_fused_mma_forward.cu, _backward.cu):
//         mma.sync m16n8k16 with fp32 accumulation, sm_80+; softmax, linear and ramp at
//         d = dv ∈ {64, 128}, with masks, GQA, KV offsets and per-row controllers;
//   warp  the fp32-arithmetic kernels (cuda/attention_fused_{forward,backward,stats}.cu) that run
//         everything the support matrix (attention_backend_support) admits for the fused backend.
// On the CPU the fused backend is the tiled reference (core/ops/attention_tiled.h): path cpu.
//
// ONE predicate, fused_mma_refusal(), decides for the forward and the backward, from what both
// calls carry (spec, dtype, controllers, the device's compute capability), so the pair agrees.
// Captures are the one forward-only input: a forward asked for statistics or captured rows takes
// the warp kernels (the mma forward computes none); its backward then takes the mma kernels,
// which is sound because the two forwards save the same row statistics (lse, row_min, row_sum)
// and un-mixed outputs with the same meaning, and the backward reads nothing else of the forward.
#include <string>

#include "core/ops/attention.h"

namespace attnlab {

enum class FusedPath : uint8_t { cpu, warp, mma };
const char* fused_path_name(FusedPath p);  // "cpu", "warp", "mma"

struct FusedPathQuery {
  AttentionSpec spec;
  DType dtype = DType::f32;
  int sm = 0;              // CUDA compute capability, major·10 + minor (90 on an H100); 0: not CUDA
  bool score_add = false;  // per-row controllers given
  bool score_mul = false;
  bool captures = false;   // forward only: any statistic or captured row asked for
  bool force_warp = false; // fused_force_warp() was on when the query was built
};

// Process-wide switch that sends every CUDA fused call to the warp kernels (tests comparing the two
// paths on the same inputs). Flip it only when no backward is pending, never between a forward and
// its backward: both read it through the predicate, and they must take the same path.
void set_fused_force_warp(bool on);
bool fused_force_warp();
struct ScopedFusedForceWarp {
  bool before;
  explicit ScopedFusedForceWarp(bool on = true) : before(fused_force_warp()) { set_fused_force_warp(on); }
  ~ScopedFusedForceWarp() { set_fused_force_warp(before); }
  ScopedFusedForceWarp(const ScopedFusedForceWarp&) = delete;
  ScopedFusedForceWarp& operator=(const ScopedFusedForceWarp&) = delete;
};

// Empty when the mma kernels run this call, else why not (it then runs on the warp kernels).
std::string fused_mma_refusal(const FusedPathQuery& q);
FusedPath fused_path(const FusedPathQuery& q);

// The queries of a forward / backward call on a device of compute capability `sm`.
FusedPathQuery fused_path_query(const AttentionArgs& a, int sm);
FusedPathQuery fused_path_query(const AttentionBackwardArgs& a, int sm);

// The path attention_tiled_forward / _backward (and attention_forward / _backward with backend =
// fused) takes for these arguments on ctx's device: cpu, warp or mma. For tests and benchmarks.
FusedPath attention_fused_path(const Ctx& ctx, const AttentionArgs& a);
FusedPath attention_fused_path(const Ctx& ctx, const AttentionBackwardArgs& a);

// Compute capability of ctx's device as FusedPathQuery::sm wants it (0 for the CPU).
int fused_device_sm(const Ctx& ctx);

namespace cuda {
int attention_fused_device_sm(const Ctx& ctx);  // compute capability of ctx's GPU (cuda/attention_fused.cu)
}  // namespace cuda

}  // namespace attnlab
