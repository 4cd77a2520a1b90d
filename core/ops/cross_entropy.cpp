#include "core/ops/cross_entropy.h"

#include <algorithm>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

namespace {

// Chunk of a CPU row reduced in one go (stays in L1) before it is merged into the running state.
constexpr int64_t kCpuChunk = 1024;

void check_rows(const char* op, const Tensor& logits, const Tensor& targets, const Tensor* stats[],
                int nstats) {
  CHECK(logits.ndim == 2, op, ": logits '", logits.name, "' must be [N, V], got ", logits.shape_str());
  const int64_t n = logits.dim(0), v = logits.dim(1);
  CHECK(v >= 1, op, ": vocabulary size V must be >= 1, got ", logits.shape_str());
  CHECK(targets.dtype == DType::i32, op, ": targets '", targets.name, "' must be i32, got ",
        dtype_name(targets.dtype));
  check_shape(targets, {n});
  const DType acc = acc_dtype(logits.dtype);
  for (int i = 0; i < nstats; ++i) {
    check_shape(*stats[i], {n});
    CHECK(stats[i]->dtype == acc, op, ": '", stats[i]->name, "' must be ", dtype_name(acc),
          " (the accumulation dtype of ", dtype_name(logits.dtype), " logits), got ",
          dtype_name(stats[i]->dtype));
  }
}

// The CPU can afford to look: every target must be a class index or the ignore index.
void check_targets_host(const char* op, const Tensor& targets, int64_t v) {
  const int32_t* t = targets.ptr<int32_t>();
  for (int64_t i = 0; i < targets.numel(); ++i)
    CHECK(t[i] == kIgnoreIndex || (t[i] >= 0 && t[i] < v), op, ": target ", t[i], " at row ", i,
          " is outside [0, V=", v, ") and is not the ignore index ", kIgnoreIndex);
}

template <class T>
void forward_cpu(const CrossEntropyArgs& a) {
  using A = acc_t<T>;
  const int64_t n = a.logits.dim(0), ld = a.logits.dim(1), v = cross_entropy_classes("", a.logits, a.vocab);
  const T* logits = a.logits.ptr<T>();
  const int32_t* targets = a.targets.ptr<int32_t>();
  A* loss = a.loss.ptr<A>();
  A* lse = a.lse.ptr<A>();
#pragma omp parallel for schedule(static) if (n * v > 65536)
  for (int64_t r = 0; r < n; ++r) {
    const T* row = logits + r * ld;
    LseState<A> state = lse_empty<A>();
    for (int64_t c0 = 0; c0 < v; c0 += kCpuChunk) {
      const int64_t c1 = std::min(v, c0 + kCpuChunk);
      A m = A(row[c0]);
      for (int64_t i = c0 + 1; i < c1; ++i) m = nan_max(m, A(row[i]));
      A s = 0;
      if (m != -A(INFINITY))
        for (int64_t i = c0; i < c1; ++i) s += ce_exp(A(row[i]) - m);
      state = lse_merge(state, LseState<A>{m, s});
    }
    lse[r] = lse_value(state);
    const int32_t t = targets[r];
    loss[r] = t == kIgnoreIndex ? A(0) : ce_row_loss(state, A(row[t]));
  }
}

template <class T>
void backward_cpu(const CrossEntropyBackwardArgs& a) {
  using A = acc_t<T>;
  const int64_t n = a.logits.dim(0), ld = a.logits.dim(1), v = cross_entropy_classes("", a.logits, a.vocab);
  // Raw pointers without restrict: dlogits may be logits itself; each element is read, then
  // written, at the same index.
  const T* logits = a.logits.ptr<T>();
  T* dlogits = a.dlogits.ptr<T>();
  const int32_t* targets = a.targets.ptr<int32_t>();
  const A* lse = a.lse.ptr<A>();
  const A scale = A(a.dloss / a.valid_count);
#pragma omp parallel for schedule(static) if (n * v > 65536)
  for (int64_t r = 0; r < n; ++r) {
    const int32_t t = targets[r];
    const T* x = logits + r * ld;
    T* g = dlogits + r * ld;
    std::fill(g + v, g + ld, T(0));  // padding columns: no class, no gradient
    if (t == kIgnoreIndex) {
      std::fill(g, g + v, T(0));
      continue;
    }
    const A l = lse[r];
    for (int64_t i = 0; i < v; ++i) g[i] = T(ce_dlogit(A(x[i]), l, i == t, scale));
  }
}

}  // namespace

int64_t cross_entropy_classes(const char* op, const Tensor& logits, int64_t vocab) {
  CHECK(vocab >= 0 && vocab <= logits.dim(1), op, ": vocab ", vocab, " must be in [0, ", logits.dim(1),
        "] (the classes are the first `vocab` columns of logits '", logits.name, "' ", logits.shape_str(),
        "; 0 = all)");
  return vocab == 0 ? logits.dim(1) : vocab;
}

int64_t count_valid_targets(const int32_t* targets, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += targets[i] != kIgnoreIndex;
  return c;
}

void cross_entropy_forward(Ctx& ctx, const CrossEntropyArgs& a) {
  NVTX_RANGE(ctx, "cross_entropy_forward");
  const Tensor* stats[] = {&a.loss, &a.lse};
  check_rows("cross_entropy_forward", a.logits, a.targets, stats, 2);
  check_device(ctx.device, {&a.logits, &a.targets, &a.loss, &a.lse});
  const int64_t v = cross_entropy_classes("cross_entropy_forward", a.logits, a.vocab);
  if (a.logits.dim(0) == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::cross_entropy_forward(ctx, a));
  check_targets_host("cross_entropy_forward", a.targets, v);
  dispatch_cpu_float(a.logits.dtype, "cross_entropy_forward", [&](auto t) {
    forward_cpu<decltype(t)>(a);
  });
}

void cross_entropy_backward(Ctx& ctx, const CrossEntropyBackwardArgs& a) {
  NVTX_RANGE(ctx, "cross_entropy_backward");
  const Tensor* stats[] = {&a.lse};
  check_rows("cross_entropy_backward", a.logits, a.targets, stats, 1);
  CHECK(a.dlogits.dtype == a.logits.dtype, "cross_entropy_backward: dlogits '", a.dlogits.name,
        "' is ", dtype_name(a.dlogits.dtype), ", logits are ", dtype_name(a.logits.dtype));
  check_shape(a.dlogits, {a.logits.dim(0), a.logits.dim(1)});
  CHECK(a.valid_count > 0, "cross_entropy_backward: valid_count must be > 0 (the number of target "
        "tokens the loss is averaged over), got ", a.valid_count);
  check_device(ctx.device, {&a.logits, &a.targets, &a.lse, &a.dlogits});
  const int64_t v = cross_entropy_classes("cross_entropy_backward", a.logits, a.vocab);
  if (a.logits.dim(0) == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::cross_entropy_backward(ctx, a));
  check_targets_host("cross_entropy_backward", a.targets, v);
  dispatch_cpu_float(a.logits.dtype, "cross_entropy_backward", [&](auto t) {
    backward_cpu<decltype(t)>(a);
  });
}

void cross_entropy_mean(Ctx& ctx, const CrossEntropyMeanArgs& a) {
  NVTX_RANGE(ctx, "cross_entropy_mean");
  CHECK(a.loss.ndim == 1, "cross_entropy_mean: loss '", a.loss.name, "' must be [N], got ",
        a.loss.shape_str());
  check_shape(a.out, {1});
  CHECK(a.out.dtype == a.loss.dtype, "cross_entropy_mean: out '", a.out.name, "' is ",
        dtype_name(a.out.dtype), ", loss is ", dtype_name(a.loss.dtype));
  CHECK(a.valid_count > 0, "cross_entropy_mean: valid_count must be > 0 (the number of target "
        "tokens the loss is averaged over), got ", a.valid_count);
  check_device(ctx.device, {&a.loss, &a.out});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::cross_entropy_mean(ctx, a));
  dispatch_cpu_float(a.loss.dtype, "cross_entropy_mean", [&](auto t) {
    using A = decltype(t);
    const A* loss = a.loss.ptr<A>();
    double sum = 0;  // double for f32 too, as the GPU reduction does
    for (int64_t i = 0; i < a.loss.numel(); ++i) sum += double(loss[i]);
    A* out = a.out.ptr<A>();
    const A mean = A(sum / a.valid_count);
    out[0] = a.accumulate ? A(out[0] + mean) : mean;
  });
}

}  // namespace attnlab
