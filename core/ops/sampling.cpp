#include "core/ops/sampling.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/sampling_math.h"
#include "core/rng.h"

namespace attnlab {

namespace {

void check_args(const Ctx& ctx, const SamplingArgs& a) {
  const Tensor& l = a.logits;
  CHECK(l.defined() && l.ndim == 2, "sampling: logits '", l.name, "' must be [B, V], got ", l.shape_str());
  const int64_t rows = l.dim(0), vocab = l.dim(1);
  CHECK(rows >= 1 && vocab >= 1, "sampling: logits must have B ≥ 1 and V ≥ 1, got ", l.shape_str());
  CHECK(vocab <= kSamplingMaxVocab, "sampling: V = ", vocab, " exceeds ", kSamplingMaxVocab,
        " (integer probability masses would overflow)");
  // The reciprocals are what the logits are multiplied by: they must be finite too.
  CHECK(a.repetition_penalty > 0.0f && std::isfinite(a.repetition_penalty) &&
            std::isfinite(1.0f / a.repetition_penalty),
        "sampling: repetition_penalty must be finite and > 0 with a finite reciprocal, got ", a.repetition_penalty);
  CHECK(std::isfinite(a.temperature) && a.temperature >= 0.0f &&
            (a.temperature == 0.0f || std::isfinite(1.0f / a.temperature)),
        "sampling: temperature must be 0 (greedy) or finite and > 0 with a finite reciprocal, got ",
        a.temperature);
  CHECK(a.top_k >= 0, "sampling: top_k must be ≥ 0 (0 = off), got ", a.top_k);
  CHECK(a.top_p > 0.0 && a.top_p <= 1.0, "sampling: top_p must be in (0, 1] (1 = off), got ", a.top_p);
  CHECK(a.out_ids.defined() && a.out_ids.dtype == DType::i32, "sampling: out_ids '", a.out_ids.name,
        "' must be an i32 tensor, got ", dtype_name(a.out_ids.dtype));
  check_shape(a.out_ids, {rows});
  if (a.out_logprobs.defined()) {
    const DType acc = acc_dtype(l.dtype);
    CHECK(a.out_logprobs.dtype == acc, "sampling: out_logprobs '", a.out_logprobs.name, "' must be ",
          dtype_name(acc), " for ", dtype_name(l.dtype), " logits, got ", dtype_name(a.out_logprobs.dtype));
    check_shape(a.out_logprobs, {rows});
  }
  if (a.repetition_penalty != 1.0f) {
    CHECK(a.seen.defined(), "sampling: repetition_penalty ", a.repetition_penalty,
          " needs the 'seen' bitmask [B, ceil(V/32)] u32");
    CHECK(a.seen.dtype == DType::u32, "sampling: seen '", a.seen.name, "' must be u32, got ",
          dtype_name(a.seen.dtype));
    check_shape(a.seen, {rows, sampling_seen_words(vocab)});
  }
  check_device(ctx.device, {&a.logits, &a.seen, &a.out_ids, &a.out_logprobs});
}

struct RowParams {
  bool greedy;
  bool use_seen;
  int64_t top_k;  // 0 = off
  bool use_top_p;
  SamplingTopP top_p;
  uint64_t seed, offset;
};

// One row, following the rules of sampling.h literally: process, cut by top-k, sort the kept
// tokens into the sampling order, cut by top-p on integer masses, draw.
template <class T>
void sample_row(const T* logits, const uint32_t* seen, int64_t vocab, int64_t row, const RowParams& p, T rp,
                T rp_inv, T temp_inv, int32_t* out_id, acc_t<T>* out_logprob, std::vector<T>& x,
                std::vector<std::pair<T, int32_t>>& kept, std::vector<uint64_t>& before) {
  x.resize(size_t(vocab));
  T m = -std::numeric_limits<T>::infinity();
  int64_t argmax = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    const bool s = p.use_seen && ((seen[v >> 5] >> (v & 31)) & 1u);
    x[v] = sampling_logit<T>(logits[v], s, rp, rp_inv, temp_inv);  // temp_inv = 1 when greedy
    CHECK(!std::isnan(x[v]) && x[v] != std::numeric_limits<T>::infinity(), "sampling: row ", row,
          " has a NaN or +inf logit at token ", v);
    if (x[v] > m) {  // strict: ties keep the lowest id
      m = x[v];
      argmax = v;
    }
  }
  CHECK(std::isfinite(m), "sampling: every logit of row ", row, " is -inf");

  if (p.greedy) {
    *out_id = int32_t(argmax);
    if (out_logprob) {
      uint64_t total = 0;
      for (int64_t v = 0; v < vocab; ++v) total += sampling_mass(x[v] - m);
      *out_logprob = acc_t<T>(-sampling_log_norm(total));
    }
    return;
  }

  T kth = -std::numeric_limits<T>::infinity();
  if (p.top_k > 0) {
    std::vector<T> copy(x);
    std::nth_element(copy.begin(), copy.begin() + (p.top_k - 1), copy.end(), std::greater<T>());
    kth = copy[size_t(p.top_k - 1)];
  }
  kept.clear();
  for (int64_t v = 0; v < vocab; ++v)
    if (x[v] >= kth) kept.push_back({x[v], int32_t(v)});
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  });

  // before[j] = mass strictly ahead of kept[j]; before[n] = total.
  const size_t n = kept.size();
  before.assign(n + 1, 0);
  for (size_t j = 0; j < n; ++j) before[j + 1] = before[j] + sampling_mass(kept[j].first - m);
  size_t n_top_p = n;
  if (p.use_top_p) {
    const uint64_t bound = sampling_top_p_bound(before[n], p.top_p);
    n_top_p = 0;
    while (n_top_p < n && before[n_top_p] < bound) ++n_top_p;
  }
  const uint64_t total = before[n_top_p];
  const uint64_t target = sampling_target(total, philox_u32(p.seed, p.offset, uint64_t(row)) >> 8);
  size_t chosen = 0;
  while (!(before[chosen] <= target && target < before[chosen + 1])) ++chosen;  // target < total: ends
  *out_id = kept[chosen].second;
  if (out_logprob) *out_logprob = acc_t<T>(double(kept[chosen].first - m) - sampling_log_norm(total));
}

template <class T>
void sampling_cpu(const Ctx& ctx, const SamplingArgs& a) {
  const int64_t rows = a.logits.dim(0), vocab = a.logits.dim(1);
  RowParams p;
  p.greedy = a.greedy || a.temperature == 0.0f;
  p.use_seen = a.repetition_penalty != 1.0f;
  p.top_k = a.top_k >= vocab ? 0 : a.top_k;
  p.use_top_p = a.top_p < 1.0;
  p.top_p = sampling_top_p_fraction(a.top_p);
  p.seed = ctx.seed;
  p.offset = a.rng_offset;
  // Reciprocals rounded to T, as the GPU computes them (f32) from the same float inputs.
  const T rp = T(a.repetition_penalty), rp_inv = T(1) / rp;
  const T temp_inv = p.greedy ? T(1) : T(1) / T(a.temperature);
  const T* logits = a.logits.ptr<T>();
  const uint32_t* seen = p.use_seen ? a.seen.ptr<uint32_t>() : nullptr;
  const int64_t words = sampling_seen_words(vocab);
  int32_t* ids = a.out_ids.ptr<int32_t>();
  acc_t<T>* logprobs = a.out_logprobs.defined() ? a.out_logprobs.ptr<acc_t<T>>() : nullptr;
  // Errors thrown inside the parallel loop are carried out of it (an exception may not cross
  // an OpenMP region).
  std::string error;
#pragma omp parallel if (rows > 1 && rows * vocab > 65536)
  {
    std::vector<T> x;
    std::vector<std::pair<T, int32_t>> kept;
    std::vector<uint64_t> before;
#pragma omp for schedule(dynamic)
    for (int64_t r = 0; r < rows; ++r) {
      try {
        sample_row<T>(logits + r * vocab, seen ? seen + r * words : nullptr, vocab, r, p, rp, rp_inv, temp_inv,
                      ids + r, logprobs ? logprobs + r : nullptr, x, kept, before);
      } catch (const Error& e) {
#pragma omp critical(attnlab_sampling_error)
        if (error.empty()) error = e.what();
      }
    }
  }
  if (!error.empty()) throw Error(error);
}

}  // namespace

void sampling_forward(Ctx& ctx, const SamplingArgs& a) {
  NVTX_RANGE(ctx, "sampling_forward");
  check_args(ctx, a);
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::sampling_forward(ctx, a));
  dispatch_cpu_float(a.logits.dtype, "sampling_forward", [&](auto t) {
    using T = decltype(t);
    sampling_cpu<T>(ctx, a);
  });
}

void sampling_mark_seen(Ctx& ctx, const Tensor& seen, const Tensor& ids) {
  NVTX_RANGE(ctx, "sampling_mark_seen");
  CHECK(seen.defined() && seen.ndim == 2 && seen.dtype == DType::u32, "sampling_mark_seen: seen '", seen.name,
        "' must be [B, W] u32, got ", dtype_name(seen.dtype), seen.shape_str());
  CHECK(ids.defined() && ids.dtype == DType::i32 && (ids.ndim == 1 || ids.ndim == 2),
        "sampling_mark_seen: ids '", ids.name, "' must be [B] or [B, T] i32, got ", dtype_name(ids.dtype),
        ids.shape_str());
  CHECK(ids.dim(0) == seen.dim(0), "sampling_mark_seen: ids ", ids.shape_str(), " and seen ", seen.shape_str(),
        " have different row counts");
  check_device(ctx.device, {&seen, &ids});
  if (ids.numel() == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::sampling_mark_seen(ctx, seen, ids));
  const int64_t rows = seen.dim(0), words = seen.dim(1), per_row = ids.numel() / rows;
  uint32_t* bits = seen.ptr<uint32_t>();
  const int32_t* id = ids.ptr<int32_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < per_row; ++t) {
      const int32_t v = id[r * per_row + t];
      if (v < 0) continue;
      CHECK(v < words * 32, "sampling_mark_seen: id ", v, " at row ", r, " is outside the bitmask of ",
            words * 32, " tokens");
      bits[r * words + (v >> 5)] |= 1u << (v & 31);
    }
}

}  // namespace attnlab
