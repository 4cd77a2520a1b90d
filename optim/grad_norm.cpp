#include "optim/grad_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

namespace {

// Σ g² in double, chunk by chunk (the table's chunks), then the chunk sums in order: the same
// result for any number of OpenMP threads.
template <class A>
double sum_of_squares_cpu(const ParamTable& table) {
  const auto& entries = table.entries();
  const int64_t chunks = table.total_chunks();
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static) if (table.total_numel() > 65536)
  for (int64_t c = 0; c < chunks; ++c) {
    auto it = std::upper_bound(entries.begin(), entries.end(), c,
                               [](int64_t chunk, const ParamTableEntry& e) { return chunk < e.chunk_begin; });
    const ParamTableEntry& e = *(it - 1);
    const A* g = static_cast<const A*>(e.grad);
    const int64_t begin = (c - e.chunk_begin) * kParamChunk;
    const int64_t end = std::min(e.numel, begin + kParamChunk);
    double s = 0;
    for (int64_t i = begin; i < end; ++i) s += double(g[i]) * double(g[i]);
    partial[size_t(c)] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

void grad_norm(Ctx& ctx, const ParamTable& grads, const GradNormArgs& a) {
  NVTX_RANGE(ctx, "grad_norm");
  CHECK(grads.size() > 0, "grad_norm: empty gradient table");
  CHECK(grads.device() == ctx.device, "grad_norm: the table was built for ", device_name(grads.device()),
        ", the context is ", device_name(ctx.device));
  check_shape(a.norm, {1});
  CHECK(a.norm.dtype == grads.dtype(), "grad_norm: norm '", a.norm.name, "' is ", dtype_name(a.norm.dtype),
        ", the gradients are ", dtype_name(grads.dtype()));
  if (a.clip_scale.defined()) {
    check_shape(a.clip_scale, {1});
    CHECK(a.clip_scale.dtype == grads.dtype(), "grad_norm: clip_scale '", a.clip_scale.name, "' is ",
          dtype_name(a.clip_scale.dtype), ", the gradients are ", dtype_name(grads.dtype()));
  }
  if (a.nonfinite.defined()) {
    check_shape(a.nonfinite, {1});
    CHECK(a.nonfinite.dtype == DType::i32, "grad_norm: nonfinite '", a.nonfinite.name,
          "' must be i32, got ", dtype_name(a.nonfinite.dtype));
  }
  if (a.sumsq.defined()) {
    check_shape(a.sumsq, {1});
    CHECK(a.sumsq.dtype == DType::f64, "grad_norm: sumsq '", a.sumsq.name, "' must be f64, got ",
          dtype_name(a.sumsq.dtype));
  }
  CHECK(std::isfinite(a.max_norm), "grad_norm: max_norm must be finite, got ", a.max_norm);
  check_device(ctx.device, {&a.norm, &a.clip_scale, &a.nonfinite, &a.sumsq});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::grad_norm(ctx, grads, a));
  dispatch_cpu_float(grads.dtype(), "grad_norm", [&](auto t) {
    using A = decltype(t);
    const double sumsq = sum_of_squares_cpu<A>(grads);
    const double norm = std::sqrt(sumsq);
    a.norm.ptr<A>()[0] = A(norm);
    if (a.clip_scale.defined()) a.clip_scale.ptr<A>()[0] = A(grad_clip_scale(norm, a.max_norm));
    if (a.nonfinite.defined()) a.nonfinite.ptr<int32_t>()[0] = std::isfinite(sumsq) ? 0 : 1;
    if (a.sumsq.defined()) a.sumsq.ptr<double>()[0] = sumsq;
  });
}

}  // namespace attnlab
