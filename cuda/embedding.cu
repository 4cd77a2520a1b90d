// Embedding lookup and its deterministic scatter-add backward.
//
// Backward design (no float atomics, bitwise reproducible, no host sync, no sort library):
//   1. count[id]   = tokens per id (integer atomics: the totals do not depend on their order;
//                    padding tokens are left out entirely).
//   2. offsets     = exclusive prefix sum of count (one block), so the tokens of `id` will occupy
//                    sorted slots [offsets[id], offsets[id+1]).
//   3. claim       : each warp takes 32 consecutive tokens; __match_any_sync groups its lanes by
//                    id, the group leader reserves a run of slots with one atomicAdd on
//                    cursor[id], and the lanes fill the run in token order. Which warp's run comes
//                    first inside a bucket depends on scheduling: not yet deterministic.
//   4. order       : every slot computes its final place from the runs of its bucket (runs are
//                    sorted inside and tagged by their 32-token window, so the rank of a token is
//                    the length of the runs of earlier windows plus its index in its run). After
//                    this, `sorted` lists each id's tokens in increasing position: deterministic.
//                    Cost per slot: the number of runs in its bucket (≤ N/32 for one huge id).
//   5. accumulate  : one warp per sub-segment of ≤ 32 consecutive slots of a bucket sums the dout
//                    rows in slot order, over all C columns (vector loads). A bucket of ≤ 32 tokens
//                    is a single sub-segment that adds its sum straight into dtable[id]. A longer
//                    bucket (a frequent token) writes each sub-segment's sum to a partial row, and
//                    the warp that finishes last (integer atomic on done[id]) adds the partial rows
//                    in sub-segment order into dtable[id]. The serial chain per warp is thus ≤ 32
//                    rows however skewed the ids are, and every row of dtable has exactly one writer.
//      Partial rows: a sub-segment starting at slot s uses row 2·(s/32) + (last of its bucket ? 0 : 1);
//      two sub-segments of long buckets starting in the same 32-slot window must be a bucket's
//      last and another bucket's non-last one, so the rows are distinct (2·ceil(N/32) rows).
//   6. dpos        : one thread per (position, pack) sums the batch in order.
#include <climits>

#include "core/ops/embedding.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kSub = kEmbeddingSubSegment;
static_assert(kSub == 32, "the claim step maps one 32-token window to one warp");

__device__ __forceinline__ int clamp_id(int32_t id, int V) { return min(max(id, 0), V - 1); }

template <class T, int VEC>
__global__ void forward_kernel(T* __restrict__ out, const int32_t* __restrict__ ids, const T* __restrict__ table,
                               const T* __restrict__ pos, int64_t N, int T_len, int V, int C, int64_t pos_offset) {
  const int packs = C / VEC;
  const int64_t total = N * packs;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx / packs;
    const int p = int(idx % packs);
    float v[VEC];
    load_floats<VEC>(v, table + int64_t(clamp_id(ids[i], V)) * C, p);
    if (pos) {
      float q[VEC];
      load_floats<VEC>(q, pos + (pos_offset + i % T_len) * C, p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) v[j] += q[j];
    }
    store_floats<VEC>(out + i * C, p, v);
  }
}

__global__ void count_kernel(int* __restrict__ count, const int32_t* __restrict__ ids, int N, int V, int padding) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x) {
    const int id = clamp_id(ids[i], V);
    if (id != padding) atomicAdd(&count[id], 1);
  }
}

// offsets[v] = Σ_{u<v} count[u], offsets[V] = total. One block of kScanThreads, each thread a
// contiguous chunk of ids.
constexpr int kScanThreads = 1024;
__global__ void __launch_bounds__(kScanThreads) scan_kernel(int* __restrict__ offsets, const int* __restrict__ count,
                                                            int V) {
  __shared__ int warp_total[32];
  const int per = (V + kScanThreads - 1) / kScanThreads;
  const int begin = min(V, int(threadIdx.x) * per), end = min(V, begin + per);
  int local = 0;
#pragma unroll 4
  for (int v = begin; v < end; ++v) local += count[v];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = local;  // inclusive scan within the warp
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  if (lane == 31) warp_total[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int t = warp_total[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(0xffffffffu, t, o);
      if (lane >= o) t += n;
    }
    warp_total[lane] = t;  // inclusive over warps
  }
  __syncthreads();
  int run = incl - local + (warp > 0 ? warp_total[warp - 1] : 0);
  for (int v = begin; v < end; ++v) {
    offsets[v] = run;
    run += count[v];
  }
  if (threadIdx.x == kScanThreads - 1) offsets[V] = run;
}

// Grid covers N exactly with whole warps: warp w owns tokens [32w, 32w + 32).
__global__ void claim_kernel(int* __restrict__ tmp, int* __restrict__ runlen, int* __restrict__ cursor,
                             const int* __restrict__ offsets, const int32_t* __restrict__ ids, int N, int V,
                             int padding) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x & 31;
  int id = i < N ? clamp_id(ids[i], V) : -1;
  if (id == padding) id = -1;
  const unsigned peers = __match_any_sync(0xffffffffu, id);
  if (id < 0) return;
  const int leader = __ffs(peers) - 1, n = __popc(peers);
  const int rank = __popc(peers & ((1u << lane) - 1u));
  int base = 0;
  if (lane == leader) base = atomicAdd(&cursor[id], n);
  base = __shfl_sync(peers, base, leader);
  const int slot = offsets[id] + base + rank;
  tmp[slot] = i;
  if (rank == 0) runlen[slot] = n;
}

__global__ void order_kernel(int* __restrict__ sorted, const int* __restrict__ tmp, const int* __restrict__ runlen,
                             const int* __restrict__ offsets, const int32_t* __restrict__ ids, int N, int V) {
  const int total = offsets[V];
  for (int s = blockIdx.x * blockDim.x + threadIdx.x; s < total; s += gridDim.x * blockDim.x) {
    const int pos = tmp[s];
    const int id = clamp_id(ids[pos], V);
    const int lo = offsets[id], hi = offsets[id + 1], window = pos / kSub;
    int before = 0, my_head = lo;
    for (int head = lo; head < hi;) {
      const int len = runlen[head], w = tmp[head] / kSub;
      if (w < window) before += len;
      if (w == window) my_head = head;
      head += len;
    }
    sorted[lo + before + (s - my_head)] = pos;
  }
}

__device__ __forceinline__ int64_t partial_row(int slot, bool last_of_bucket) {
  return 2 * int64_t(slot / kSub) + (last_of_bucket ? 0 : 1);
}

// One warp per sorted slot; only the warps at the start of a sub-segment work.
template <class T, int VEC>
__global__ void accumulate_kernel(float* __restrict__ dtable, float* __restrict__ partial, int* __restrict__ done,
                                  const int* __restrict__ sorted, const int* __restrict__ offsets,
                                  const int32_t* __restrict__ ids, const T* __restrict__ dout, int V, int C) {
  const int64_t warp_id = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  const int total = offsets[V];
  if (warp_id >= total) return;
  const int s = int(warp_id);
  const int id = clamp_id(ids[sorted[s]], V);
  const int lo = offsets[id], hi = offsets[id + 1];
  if ((s - lo) % kSub != 0) return;
  const int end = min(s + kSub, hi), count = hi - lo;
  const int n_sub = (count + kSub - 1) / kSub, sub = (s - lo) / kSub;
  const bool direct = n_sub == 1;
  float* dst = direct ? dtable + int64_t(id) * C : partial + partial_row(s, sub == n_sub - 1) * C;
  const int packs = C / VEC;
  for (int p = lane; p < packs; p += 32) {
    float acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[j] = 0.f;
#pragma unroll 4
    for (int r = s; r < end; ++r) {
      float v[VEC];
      load_floats<VEC>(v, dout + int64_t(sorted[r]) * C, p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) acc[j] += v[j];
    }
    if (direct) {
      add_floats<VEC>(dst + p * VEC, acc);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) dst[p * VEC + j] = acc[j];
    }
  }
  if (direct) return;
  // Publish this partial row, then count it; the last of the bucket's n_sub warps adds them all.
  __threadfence();
  __syncwarp();
  int finished = 0;
  if (lane == 0) finished = atomicAdd(&done[id], 1);
  finished = __shfl_sync(0xffffffffu, finished, 0);
  if (finished != n_sub - 1) return;
  __threadfence();
  float* row = dtable + int64_t(id) * C;
  for (int p = lane; p < packs; p += 32) {
    float acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[j] = 0.f;
    for (int k = 0; k < n_sub; ++k) {
      const float* src = partial + partial_row(lo + k * kSub, k == n_sub - 1) * C + p * VEC;
#pragma unroll
      for (int j = 0; j < VEC; ++j) acc[j] += __ldcg(src + j);  // L2: written by other SMs
    }
    add_floats<VEC>(row + p * VEC, acc);
  }
}

template <class T, int VEC>
__global__ void dpos_kernel(float* __restrict__ dpos, const T* __restrict__ dout, int64_t batches, int T_len, int C,
                            int64_t pos_offset) {
  const int packs = C / VEC;
  const int64_t total = int64_t(T_len) * packs;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int t = int(idx / packs), p = int(idx % packs);
    float acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[j] = 0.f;
    for (int64_t b = 0; b < batches; ++b) {
      float v[VEC];
      load_floats<VEC>(v, dout + (b * T_len + t) * C, p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) acc[j] += v[j];
    }
    add_floats<VEC>(dpos + (pos_offset + t) * C + p * VEC, acc);
  }
}

int64_t tokens_per_position_row(const Tensor& ids) { return ids.ndim == 2 ? ids.dim(1) : ids.numel(); }

}  // namespace

void embedding_forward(Ctx& ctx, const EmbeddingArgs& a) {
  dispatch_cuda_float(a.table.dtype, "embedding_forward", [&](auto t) {
    using T = decltype(t);
    const int64_t N = a.ids.numel(), C = a.table.dim(1), V = a.table.dim(0);
    const T* pos = dptr_or_null<T>(a.pos);
    const int vec = choose_vec<T>(C, {a.out.data, a.table.data, pos});
    const int64_t threads = N * (C / vec);
    const int block = 256;
    auto launch = [&](auto kernel) {
      kernel<<<grid_for(threads, block, 32), block, 0, stream_of(ctx)>>>(dptr<T>(a.out), dptr<int32_t>(a.ids),
                                                                      dptr<T>(a.table), pos, N,
                                                                      int(tokens_per_position_row(a.ids)), int(V),
                                                                      int(C), a.pos_offset);
    };
    if (vec == 1)
      launch(forward_kernel<T, 1>);
    else
      launch(forward_kernel<T, kVec16<T>>);
    CUDA_CHECK_LAUNCH();
  });
}

void embedding_backward(Ctx& ctx, const EmbeddingBackwardArgs& a) {
  dispatch_cuda_float(a.dout.dtype, "embedding_backward", [&](auto t) {
    using T = decltype(t);
    const int N = int(a.ids.numel());
    const int64_t C = a.dout.dim(-1);
    const int T_len = int(tokens_per_position_row(a.ids));
    const T* dout = dptr<T>(a.dout);
    const int32_t* ids = dptr<int32_t>(a.ids);
    cudaStream_t st = stream_of(ctx);
    const int block = 256;

    if (a.dtable.defined()) {
      const int V = int(a.dtable.dim(0));
      const size_t need_idx = embedding_backward_index_scratch(N, V), need_part = embedding_backward_partial_scratch(N, C);
      CHECK(a.index_scratch.defined() && a.index_scratch.dtype == DType::i32 &&
                size_t(a.index_scratch.numel()) >= need_idx,
            "embedding_backward: index_scratch must be i32 with >= ", need_idx, " elements, got '",
            a.index_scratch.name, "' ", dtype_name(a.index_scratch.dtype), a.index_scratch.shape_str());
      CHECK(a.partial_scratch.defined() && a.partial_scratch.dtype == DType::f32 &&
                size_t(a.partial_scratch.numel()) >= need_part,
            "embedding_backward: partial_scratch must be f32 with >= ", need_part, " elements, got '",
            a.partial_scratch.name, "' ", dtype_name(a.partial_scratch.dtype), a.partial_scratch.shape_str());
      int* base = dptr<int32_t>(a.index_scratch);
      int* count = base;
      int* cursor = count + V;
      int* done = cursor + V;
      int* offsets = done + V;
      int* tmp = offsets + V + 1;
      int* runlen = tmp + N;
      int* sorted = runlen + N;
      float* partial = dptr<float>(a.partial_scratch);
      float* dtable = dptr<float>(a.dtable);
      const int padding = int(a.padding_idx);

      CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(int) * 3 * size_t(V), st));
      count_kernel<<<grid_for(N, block, 32), block, 0, st>>>(count, ids, N, V, padding);
      CUDA_CHECK_LAUNCH();
      scan_kernel<<<1, kScanThreads, 0, st>>>(offsets, count, V);
      CUDA_CHECK_LAUNCH();
      claim_kernel<<<ceil_div(N, block), block, 0, st>>>(tmp, runlen, cursor, offsets, ids, N, V, padding);
      CUDA_CHECK_LAUNCH();
      order_kernel<<<grid_for(N, block, 32), block, 0, st>>>(sorted, tmp, runlen, offsets, ids, N, V);
      CUDA_CHECK_LAUNCH();
      const int vec = choose_vec<T>(C, {dout, dtable, partial});
      const int64_t warps_blocks = ceil_div(int64_t(N) * 32, block);
      if (vec == 1)
        accumulate_kernel<T, 1><<<warps_blocks, block, 0, st>>>(dtable, partial, done, sorted, offsets, ids, dout, V,
                                                                int(C));
      else
        accumulate_kernel<T, kVec16<T>>
            <<<warps_blocks, block, 0, st>>>(dtable, partial, done, sorted, offsets, ids, dout, V, int(C));
      CUDA_CHECK_LAUNCH();
    }

    if (a.dpos.defined()) {
      float* dpos = dptr<float>(a.dpos);
      const int vec = choose_vec<T>(C, {dout, dpos});
      const int64_t batches = N / T_len, threads = int64_t(T_len) * (C / vec);
      if (vec == 1)
        dpos_kernel<T, 1><<<grid_for(threads, block, 32), block, 0, st>>>(dpos, dout, batches, T_len, int(C), a.pos_offset);
      else
        dpos_kernel<T, kVec16<T>>
            <<<grid_for(threads, block, 32), block, 0, st>>>(dpos, dout, batches, T_len, int(C), a.pos_offset);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace attnlab::cuda
