#pragma once
// NVTX ranges for nsight. Every op launcher opens one named after the op (and the layer, when
// the layer sets a scope). Header-only NVTX3: free when no profiler is attached.
#include "core/ctx.h"

#if ATTNLAB_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace attnlab {

class NvtxRange {
 public:
  NvtxRange(const Ctx& ctx, const char* name) {
#if ATTNLAB_WITH_CUDA
    active_ = ctx.nvtx;
    if (active_) nvtxRangePushA(name);
#endif
  }
  explicit NvtxRange(const char* name) {
#if ATTNLAB_WITH_CUDA
    active_ = true;
    nvtxRangePushA(name);
#endif
  }
  ~NvtxRange() {
#if ATTNLAB_WITH_CUDA
    if (active_) nvtxRangePop();
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;

 private:
  bool active_ = false;
};

}  // namespace attnlab

#define ATTNLAB_NVTX_CAT2(a, b) a##b
#define ATTNLAB_NVTX_CAT(a, b) ATTNLAB_NVTX_CAT2(a, b)
#define NVTX_RANGE(ctx, name) ::attnlab::NvtxRange ATTNLAB_NVTX_CAT(nvtx_range_, __LINE__)(ctx, name)
