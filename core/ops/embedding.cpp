#include "core/ops/embedding.h"

#include <climits>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

namespace {

struct EmbShape {
  int64_t N = 0, T = 0, C = 0;
};

EmbShape check_ids(const char* op, const Tensor& ids) {
  CHECK(ids.defined() && ids.dtype == DType::i32 && (ids.ndim == 1 || ids.ndim == 2), op,
        ": ids must be i32 [B, T] or [N], got '", ids.name, "' ", dtype_name(ids.dtype), ids.shape_str());
  EmbShape s;
  s.N = ids.numel();
  s.T = ids.ndim == 2 ? ids.dim(1) : s.N;
  CHECK(s.N <= INT_MAX, op, ": at most ", INT_MAX, " tokens per call, got ", s.N);
  return s;
}

void check_pos(const char* op, const Tensor& pos, const EmbShape& s, int64_t pos_offset, DType dt, const char* role) {
  CHECK(pos.ndim == 2 && pos.dim(1) == s.C && pos.dtype == dt, op, ": ", role, " must be ", dtype_name(dt), " [P, ",
        s.C, "], got '", pos.name, "' ", dtype_name(pos.dtype), pos.shape_str());
  CHECK(pos_offset >= 0 && pos_offset + s.T <= pos.dim(0), op, ": positions [", pos_offset, ", ", pos_offset + s.T,
        ") do not fit the ", pos.dim(0), " rows of ", role);
}

// The CPU can report a bad id precisely; the GPU clamps (see embedding.h).
void check_ids_in_range(const char* op, const Tensor& ids, int64_t V) {
  const int32_t* id = ids.ptr<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    CHECK(id[i] >= 0 && id[i] < V, op, ": token id ", id[i], " at index ", i, " is outside the vocabulary [0, ", V,
          ")");
}

template <class T>
void cpu_forward(const EmbeddingArgs& a, const EmbShape& s) {
  const int32_t* ids = a.ids.ptr<int32_t>();
  const T* table = a.table.ptr<T>();
  const T* pos = a.pos.defined() ? a.pos.ptr<T>() : nullptr;
  T* out = a.out.ptr<T>();
  const int64_t C = s.C;
#pragma omp parallel for schedule(static) if (s.N * C > 65536)
  for (int64_t i = 0; i < s.N; ++i) {
    const T* row = table + int64_t(ids[i]) * C;
    T* o = out + i * C;
    if (pos) {
      const T* p = pos + (a.pos_offset + i % s.T) * C;
      for (int64_t c = 0; c < C; ++c) o[c] = row[c] + p[c];
    } else {
      for (int64_t c = 0; c < C; ++c) o[c] = row[c];
    }
  }
}

template <class T>
void cpu_backward(const EmbeddingBackwardArgs& a, const EmbShape& s) {
  using A = acc_t<T>;
  const int32_t* ids = a.ids.ptr<int32_t>();
  const T* dout = a.dout.ptr<T>();
  const int64_t C = s.C;
  // Parallel over column blocks, tokens in order inside each: the sums do not depend on the
  // thread count, and two tokens with the same id never race.
  constexpr int64_t kCols = 64;
  const int64_t blocks = (C + kCols - 1) / kCols;
  if (a.dtable.defined()) {
    A* dtable = a.dtable.ptr<A>();
#pragma omp parallel for schedule(static) if (s.N * C > 65536)
    for (int64_t cb = 0; cb < blocks; ++cb) {
      const int64_t c0 = cb * kCols, c1 = std::min(C, c0 + kCols);
      for (int64_t i = 0; i < s.N; ++i) {
        if (ids[i] == a.padding_idx) continue;
        A* d = dtable + int64_t(ids[i]) * C;
        for (int64_t c = c0; c < c1; ++c) d[c] += A(dout[i * C + c]);
      }
    }
  }
  if (a.dpos.defined()) {
    A* dpos = a.dpos.ptr<A>();
#pragma omp parallel for schedule(static) if (s.N * C > 65536)
    for (int64_t cb = 0; cb < blocks; ++cb) {
      const int64_t c0 = cb * kCols, c1 = std::min(C, c0 + kCols);
      for (int64_t i = 0; i < s.N; ++i) {
        A* d = dpos + (a.pos_offset + i % s.T) * C;
        for (int64_t c = c0; c < c1; ++c) d[c] += A(dout[i * C + c]);
      }
    }
  }
}

}  // namespace

void embedding_forward(Ctx& ctx, const EmbeddingArgs& a) {
  NVTX_RANGE(ctx, "embedding_forward");
  const char* op = "embedding_forward";
  EmbShape s = check_ids(op, a.ids);
  CHECK(a.table.ndim == 2 && a.table.dim(0) >= 1 && a.table.dim(1) >= 1, op, ": table must be [V, C], got '",
        a.table.name, "' ", a.table.shape_str());
  CHECK(a.table.dim(0) <= INT_MAX, op, ": V must fit in i32, got ", a.table.dim(0));
  s.C = a.table.dim(1);
  const DType dt = a.table.dtype;
  CHECK(a.out.numel() == s.N * s.C && a.out.dim(-1) == s.C && a.out.dtype == dt, op, ": out must be ",
        dtype_name(dt), " [", s.N, " tokens, ", s.C, "], got '", a.out.name, "' ", dtype_name(a.out.dtype),
        a.out.shape_str());
  if (a.pos.defined()) check_pos(op, a.pos, s, a.pos_offset, dt, "pos");
  check_device(ctx.device, {&a.out, &a.ids, &a.table, &a.pos});
  if (s.N == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::embedding_forward(ctx, a));
  check_ids_in_range(op, a.ids, a.table.dim(0));
  dispatch_cpu_float(dt, op, [&](auto t) { cpu_forward<decltype(t)>(a, s); });
}

void embedding_backward(Ctx& ctx, const EmbeddingBackwardArgs& a) {
  NVTX_RANGE(ctx, "embedding_backward");
  const char* op = "embedding_backward";
  EmbShape s = check_ids(op, a.ids);
  CHECK(a.dout.defined() && a.dout.ndim >= 1 && a.dout.dim(-1) >= 1, op, ": dout must be [N, C], got '", a.dout.name,
        "' ", a.dout.shape_str());
  s.C = a.dout.dim(-1);
  CHECK(a.dout.numel() == s.N * s.C, op, ": dout ", a.dout.shape_str(), " does not hold ", s.N, " rows of ", s.C);
  const DType at = acc_dtype(a.dout.dtype);
  if (a.dtable.defined()) {
    CHECK(a.dtable.ndim == 2 && a.dtable.dim(1) == s.C && a.dtable.dtype == at && a.dtable.dim(0) >= 1 &&
              a.dtable.dim(0) <= INT_MAX,
          op,
          ": dtable must be ", dtype_name(at), " [V, ", s.C, "], got '", a.dtable.name, "' ",
          dtype_name(a.dtable.dtype), a.dtable.shape_str());
    CHECK(a.padding_idx == -1 || (a.padding_idx >= 0 && a.padding_idx < a.dtable.dim(0)), op,
          ": padding_idx must be -1 or in [0, ", a.dtable.dim(0), "), got ", a.padding_idx);
  }
  if (a.dpos.defined()) check_pos(op, a.dpos, s, a.pos_offset, at, "dpos");
  check_device(ctx.device, {&a.dtable, &a.dpos, &a.dout, &a.ids, &a.index_scratch, &a.partial_scratch});
  if (s.N == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::embedding_backward(ctx, a));
  if (a.dtable.defined()) check_ids_in_range(op, a.ids, a.dtable.dim(0));
  dispatch_cpu_float(a.dout.dtype, op, [&](auto t) { cpu_backward<decltype(t)>(a, s); });
}

// Layout (cuda/embedding.cu): count[V], cursor[V], done[V], offsets[V+1], tmp[N], runlen[N], sorted[N].
size_t embedding_backward_index_scratch(int64_t N, int64_t V) { return size_t(4 * V + 1 + 3 * N); }

// At most two sub-segment partial rows start in any window of kEmbeddingSubSegment sorted slots.
size_t embedding_backward_partial_scratch(int64_t N, int64_t C) {
  return size_t(2 * ((N + kEmbeddingSubSegment - 1) / kEmbeddingSubSegment) * C);
}

}  // namespace attnlab
