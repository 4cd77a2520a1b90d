#pragma once
// Dtype dispatch for the CPU implementations: every op runs in float and double on the CPU.
#include "core/dtype.h"
#include "core/error.h"

namespace attnlab {

template <class F>
decltype(auto) dispatch_cpu_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    default:
      FAIL_WITH(op, ": the CPU backend runs f32 and f64, got ", dtype_name(t),
                " (bf16 runs on CUDA; use f32 on the CPU)");
  }
}

}  // namespace attnlab

// Forward to the CUDA implementation, or explain why there is none.
#if ATTNLAB_WITH_CUDA
#define ATTNLAB_CUDA_DISPATCH(call) call
#else
#define ATTNLAB_CUDA_DISPATCH(call) \
  FAIL_WITH("a CUDA tensor reached an op but attnlab was built without CUDA")
#endif
