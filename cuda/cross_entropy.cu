// Cross-entropy kernels over rows of ld columns whose first V are classes (ld > V: padded rows).
// Forward: one block per row (or, when there are too few rows to fill
// the GPU, several blocks per row whose partial log-sum-exp states a second kernel merges),
// 16-byte loads, online log-sum-exp. Backward: a flat grid of (row, chunk) blocks recomputing
// softmax from the saved lse, safe in place over the logits.
#include <cstdint>

#include "core/ops/cross_entropy.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // 16-byte loads in flight per thread
constexpr float kLog2e = 1.4426950408889634f;
// Forward with few rows: the smallest piece of a row one block reduces (below this the launch and
// merge cost more than the parallelism gains).
constexpr int64_t kMinSplitLen = 4096;

// [begin, end) of a row split into a scalar head up to the first 16-byte boundary, a body of
// whole 16-byte packs, and a scalar tail: V is arbitrary, so rows start at any alignment.
struct Span {
  int64_t body_begin;
  int64_t num_packs;
  int64_t tail_begin;
};
template <class T>
__device__ __forceinline__ Span aligned_span(const T* row, int64_t begin, int64_t end) {
  const int64_t misaligned = int64_t(reinterpret_cast<uintptr_t>(row + begin) % 16) / int64_t(sizeof(T));
  const int64_t head = misaligned ? min(end - begin, int64_t(kVec16<T>) - misaligned) : 0;
  const int64_t packs = (end - begin - head) / kVec16<T>;
  return {begin + head, packs, begin + head + packs * kVec16<T>};
}

// A thread's online log-sum-exp. The per-pack update rescales at most once per 16 bytes, and
// exp2 with a pre-scaled argument is one multiply plus the SFU instruction. NaN must reach the
// result (the trainer's NaN guard): the pack maximum uses the cheap fmaxf, which drops NaN, but a
// NaN element still adds exp2(NaN) = NaN to the sum, and an all-NaN pack makes max NaN.
struct ThreadLse {
  float max = -INFINITY, sum = 0.f;
  __device__ __forceinline__ void rescale_to(float candidate) {
    const float m = nan_max(max, candidate);
    if (m != max) {  // also true once max is NaN, which then spreads into sum
      sum *= exp2f((max - m) * kLog2e);
      max = m;
    }
  }
  // While every value seen is −inf (or NaN), shift by 0 instead of max: −inf − −inf would be NaN,
  // and −inf − 0 adds exactly 0.
  __device__ __forceinline__ float shift() const { return max == -INFINITY ? 0.f : max; }
  template <int P>
  __device__ __forceinline__ void add(const float (&x)[P]) {
    float m = x[0];
#pragma unroll
    for (int i = 1; i < P; ++i) m = fmaxf(m, x[i]);
    rescale_to(m);
    const float ref = shift();
#pragma unroll
    for (int i = 0; i < P; ++i) sum += exp2f((x[i] - ref) * kLog2e);
  }
  __device__ __forceinline__ void add1(float x) {
    rescale_to(x);
    sum += exp2f((x - shift()) * kLog2e);
  }
};

__device__ __forceinline__ LseState<float> warp_lse(LseState<float> s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    LseState<float> other{__shfl_xor_sync(0xffffffffu, s.max, o), __shfl_xor_sync(0xffffffffu, s.sum, o)};
    s = lse_merge(s, other);
  }
  return s;
}
// Thread 0 gets the block's state.
__device__ __forceinline__ LseState<float> block_lse(LseState<float> s, float2* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  s = warp_lse(s);
  if (lane == 0) shared[warp] = make_float2(s.max, s.sum);
  __syncthreads();
  if (warp == 0) {
    s = lane < kThreads / 32 ? LseState<float>{shared[lane].x, shared[lane].y} : lse_empty<float>();
    s = warp_lse(s);
  }
  return s;
}

template <class T>
__device__ __forceinline__ void finish_row(const T* row, int32_t target, int64_t V, LseState<float> s,
                                           float* loss, float* lse) {
  *lse = lse_value(s);
  if (target == kIgnoreIndex) *loss = 0.f;
  else if (target >= 0 && target < V) *loss = ce_row_loss(s, to_f(row[target]));
  else *loss = NAN;  // bad target: loud for the NaN guard, and never an out-of-bounds read
}

// Block b reduces piece (b % splits) of row (b / splits). With splits == 1 it finishes the row;
// otherwise it leaves its (max, sum) in `partial` for ce_merge_kernel.
template <class T>
__global__ void __launch_bounds__(kThreads)
ce_forward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets, int64_t V, int64_t ld,
                  int splits, int64_t split_len, float* __restrict__ loss, float* __restrict__ lse,
                  float2* __restrict__ partial) {
  constexpr int P = kVec16<T>;
  const int64_t row = blockIdx.x / splits;
  const int64_t begin = (blockIdx.x - row * splits) * split_len;
  const int64_t end = min(V, begin + split_len);
  const T* x = logits + row * ld;
  ThreadLse st;
  const Span span = aligned_span(x, begin, end);
  for (int64_t i = begin + threadIdx.x; i < span.body_begin; i += kThreads) st.add1(to_f(x[i]));
  const Pack<T, P>* packs = reinterpret_cast<const Pack<T, P>*>(x + span.body_begin);
  int64_t k = threadIdx.x;
  for (; k + (kUnroll - 1) * kThreads < span.num_packs; k += kUnroll * kThreads) {
    Pack<T, P> raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) raw[u] = ldg_pack16(packs + k + u * kThreads);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float v[P];
      to_floats<P>(raw[u], v);
      st.add(v);
    }
  }
  for (; k < span.num_packs; k += kThreads) {
    float v[P];
    to_floats<P>(ldg_pack16(packs + k), v);
    st.add(v);
  }
  for (int64_t i = span.tail_begin + threadIdx.x; i < end; i += kThreads) st.add1(to_f(x[i]));

  __shared__ float2 shared[kThreads / 32];
  const LseState<float> s = block_lse({st.max, st.sum}, shared);
  if (threadIdx.x != 0) return;
  if (splits > 1) partial[blockIdx.x] = make_float2(s.max, s.sum);
  else finish_row(x, targets[row], V, s, loss + row, lse + row);
}

// One warp per row: merges the row's `splits` partial states in a fixed order.
template <class T>
__global__ void ce_merge_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                                int64_t N, int64_t V, int64_t ld, int splits, const float2* __restrict__ partial,
                                float* __restrict__ loss, float* __restrict__ lse) {
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (row >= N) return;  // whole warps leave together: the shuffles below see full warps
  LseState<float> s = lse_empty<float>();
  for (int j = lane; j < splits; j += 32) {
    const float2 p = partial[row * splits + j];
    s = lse_merge(s, LseState<float>{p.x, p.y});
  }
  s = warp_lse(s);
  if (lane == 0) finish_row(logits + row * ld, targets[row], V, s, loss + row, lse + row);
}

// Block b writes chunk (b % chunks) of row (b / chunks); the chunks cover the whole padded row
// [0, ld), and columns [V, ld) get 0. `logits` and `dlogits` may be the same memory (no
// __restrict__ on them): each element is loaded before it is stored, by one thread.
// kVec: both rows share their alignment modulo 16 bytes, so the packs line up.
template <class T, bool kVec>
__global__ void __launch_bounds__(kThreads)
ce_backward_kernel(const T* logits, T* dlogits, const int32_t* __restrict__ targets,
                   const float* __restrict__ lse, int64_t V, int64_t ld, int chunks, int64_t chunk_len,
                   float scale) {
  constexpr int P = kVec16<T>;
  const int64_t row = blockIdx.x / chunks;
  const int64_t begin = (blockIdx.x - row * chunks) * chunk_len;
  const int64_t end = min(ld, begin + chunk_len);
  const int32_t t = targets[row];
  const T* x = logits + row * ld;
  T* g = dlogits + row * ld;

  if (t < 0 || t >= V) {  // ignored row: zeros; bad target: NaN (padding: 0). Nothing needs reading.
    const T fill = from_f<T>(t == kIgnoreIndex ? 0.f : NAN);
    for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) g[i] = i < V ? fill : from_f<T>(0.f);
    return;
  }
  const float l = lse[row];
  auto grad = [&](float xv, int64_t i) {
    return i < V ? (exp2f((xv - l) * kLog2e) - (i == t ? 1.f : 0.f)) * scale : 0.f;
  };

  if (!kVec) {
    for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) g[i] = from_f<T>(grad(to_f(x[i]), i));
    return;
  }
  const Span span = aligned_span(x, begin, end);
  for (int64_t i = begin + threadIdx.x; i < span.body_begin; i += kThreads)
    g[i] = from_f<T>(grad(to_f(x[i]), i));
  const Pack<T, P>* in = reinterpret_cast<const Pack<T, P>*>(x + span.body_begin);
  Pack<T, P>* out = reinterpret_cast<Pack<T, P>*>(g + span.body_begin);
  auto process = [&](const Pack<T, P> raw, int64_t k) {  // by value: one vector load
    float v[P];
    to_floats<P>(raw, v);
    const int64_t first = span.body_begin + k * P;
#pragma unroll
    for (int e = 0; e < P; ++e) v[e] = grad(v[e], first + e);
    out[k] = from_floats<T, P>(v);
  };
  int64_t k = threadIdx.x;
  for (; k + (kUnroll - 1) * kThreads < span.num_packs; k += kUnroll * kThreads) {
    Pack<T, P> raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) raw[u] = in[k + u * kThreads];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) process(raw[u], k + u * kThreads);
  }
  for (; k < span.num_packs; k += kThreads) process(in[k], k);
  for (int64_t i = span.tail_begin + threadIdx.x; i < end; i += kThreads)
    g[i] = from_f<T>(grad(to_f(x[i]), i));
}

constexpr int kMeanThreads = 1024;

__global__ void __launch_bounds__(kMeanThreads)
ce_mean_kernel(const float* __restrict__ loss, int64_t n, double valid_count, bool accumulate,
               float* __restrict__ out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kMeanThreads) acc += double(loss[i]);
  __shared__ double shared[32];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) {
    const float mean = float(acc / valid_count);
    *out = accumulate ? *out + mean : mean;
  }
}

int sm_count(const Ctx& ctx) {
  int n = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, ctx.device_index));
  return n;
}

}  // namespace

void cross_entropy_forward(Ctx& ctx, const CrossEntropyArgs& a) {
  dispatch_cuda_float(a.logits.dtype, "cross_entropy_forward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = a.logits.dim(0), ld = a.logits.dim(1);
    const int64_t V = cross_entropy_classes("cross_entropy_forward", a.logits, a.vocab);
    // Few rows (decoding, small eval batches, N = 1 with V = 152k): one block per row would leave
    // most SMs idle, so rows are cut into pieces aiming at ~4 blocks per SM.
    const int64_t sms = sm_count(ctx);
    int64_t splits = 1;
    if (N < 2 * sms) splits = std::max<int64_t>(1, std::min(ceil_div(4 * sms, N), V / kMinSplitLen));
    int64_t split_len = V;
    if (splits > 1) {
      split_len = ceil_div(ceil_div(V, splits), 64) * 64;
      splits = ceil_div(V, split_len);  // no empty pieces
    }
    // The partial states live in the context's scratch workspace (stream-ordered, so no other
    // user of it runs in between).
    if (splits > 1 && size_t(N * splits) * sizeof(float2) > ctx.workspace_bytes) {
      splits = 1;
      split_len = V;
    }
    const int64_t blocks = N * splits;
    CHECK(blocks < (int64_t(1) << 31), "cross_entropy_forward: ", N, " rows exceed the grid limit");
    auto* partial = static_cast<float2*>(ctx.workspace);
    ce_forward_kernel<T><<<unsigned(blocks), kThreads, 0, stream_of(ctx)>>>(
        dptr<T>(a.logits), dptr<int32_t>(a.targets), V, ld, int(splits), split_len, dptr<float>(a.loss),
        dptr<float>(a.lse), partial);
    CUDA_CHECK_LAUNCH();
    if (splits > 1) {
      const int threads = 256;
      ce_merge_kernel<T><<<unsigned(ceil_div(N * 32, threads)), threads, 0, stream_of(ctx)>>>(
          dptr<T>(a.logits), dptr<int32_t>(a.targets), N, V, ld, int(splits), partial,
          dptr<float>(a.loss), dptr<float>(a.lse));
      CUDA_CHECK_LAUNCH();
    }
  });
}

void cross_entropy_backward(Ctx& ctx, const CrossEntropyBackwardArgs& a) {
  dispatch_cuda_float(a.logits.dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = a.logits.dim(0), ld = a.logits.dim(1);
    const int64_t V = cross_entropy_classes("cross_entropy_backward", a.logits, a.vocab);
    const int64_t chunk_len = int64_t(kThreads) * kVec16<T> * kUnroll;
    const int64_t chunks = ceil_div(ld, chunk_len);
    const int64_t blocks = N * chunks;
    CHECK(blocks < (int64_t(1) << 31), "cross_entropy_backward: ", N, "x", V, " exceeds the grid limit");
    const T* x = dptr<T>(a.logits);
    T* g = dptr<T>(a.dlogits);
    const bool same_alignment =
        (reinterpret_cast<uintptr_t>(x) - reinterpret_cast<uintptr_t>(g)) % 16 == 0;
    const float scale = float(a.dloss / a.valid_count);
    auto launch = [&](auto kernel) {
      kernel<<<unsigned(blocks), kThreads, 0, stream_of(ctx)>>>(
          x, g, dptr<int32_t>(a.targets), dptr<float>(a.lse), V, ld, int(chunks), chunk_len, scale);
      CUDA_CHECK_LAUNCH();
    };
    if (same_alignment) launch(ce_backward_kernel<T, true>);
    else launch(ce_backward_kernel<T, false>);
  });
}

void cross_entropy_mean(Ctx& ctx, const CrossEntropyMeanArgs& a) {
  CHECK(a.loss.dtype == DType::f32, "cross_entropy_mean: CUDA losses are f32, got ",
        dtype_name(a.loss.dtype));
  ce_mean_kernel<<<1, kMeanThreads, 0, stream_of(ctx)>>>(dptr<float>(a.loss), a.loss.numel(),
                                                         a.valid_count, a.accumulate, dptr<float>(a.out));
  CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::cuda
