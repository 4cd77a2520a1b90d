// Token sampling: one 512-thread block per row (core/ops/sampling.h describes the rules and the
// two paths). Every decision is an integer comparison on masses from core/ops/sampling_math.h, so
// the result equals the CPU's bit for bit and does not depend on thread scheduling.
#include <cooperative_groups.h>

#include "core/ops/sampling.h"
#include "core/ops/sampling_math.h"
#include "core/rng.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;  // ≤ 32: one warp combines the warps' partials
constexpr int kCandidates = 4096;  // tokens sorted in shared memory by the common path
constexpr int kTopBins = 4096;     // first radix digit: sign, exponent and 3 mantissa bits
constexpr int kBins = 1024;        // second and third digits: 10 bits each
constexpr int kIdBins = 4096;      // ids (< 2^19) in two 12-bit digits
static_assert(kWarps <= 32 && kThreads <= kCandidates && kBins % kThreads == 0 && kTopBins % kThreads == 0,
              "block reductions, the per-thread maxima sort and find_bin rely on these");
static_assert(int64_t(kIdBins) * kIdBins >= kSamplingMaxVocab, "two id digits cover every id");

struct SmallSmem {
  uint64_t keys[kCandidates];  // (order key << 32) | id, sorted descending
  uint64_t incl[kCandidates];  // inclusive cumulative mass in that order
};
struct WideSmem {
  uint64_t mass[kTopBins];
  uint32_t count[kTopBins];
  uint32_t max_id[kBins];  // highest id per bin, in the last value digit
};
union SampleSmem {
  SmallSmem small;
  WideSmem wide;
};

struct Params {
  const void* logits;  // [B, V]
  const uint32_t* seen;  // [B, words] or null (no repetition penalty)
  int64_t words;
  int32_t* out_ids;
  float* out_logprobs;  // or null
  int vocab;
  int top_k;  // 0 = off (normalised: 0 < top_k < V otherwise)
  bool packed;  // rows are 16-byte aligned: load packs
  bool use_top_p;
  SamplingTopP top_p;
  float rp, rp_inv, temp_inv;
  uint64_t seed, offset;
};

// Shared scalars of one block: reduction lanes and broadcast slots.
struct BlockShared {
  uint64_t red[kWarps];
  uint64_t u64[4];
  int i32[4];
};

template <class T>
struct RowReader {
  const T* logits;
  const uint32_t* seen;  // this row's words, or null
  int vocab;
  bool packed;
  float rp, rp_inv, temp_inv;

  __device__ __forceinline__ float process(float raw, uint32_t word, int i) const {
    return sampling_logit<float>(raw, (word >> (i & 31)) & 1u, rp, rp_inv, temp_inv);
  }
};

// Calls f(i, x) for every token i of the row with its processed logit x. Each thread visits a
// fixed disjoint subset; consecutive lanes read consecutive addresses (16-byte packs when the row
// is aligned), and each thread keeps kUnroll loads in flight (one SM streams a whole row, so the
// bytes in flight set the bandwidth; the light passes afford more registers for them).
template <int kUnroll = 4, class T, class F>
__device__ __forceinline__ void for_each_logit(const RowReader<T>& row, F&& f) {
  constexpr int kVec = kVec16<T>;
  int scalar_from = 0;
  if (row.packed) {
    const int packs = row.vocab / kVec;
    const Pack<T, kVec>* src = reinterpret_cast<const Pack<T, kVec>*>(row.logits);
    for (int p0 = threadIdx.x; p0 < packs; p0 += kUnroll * kThreads) {
      Pack<T, kVec> v[kUnroll];
      uint32_t w[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int p = p0 + u * kThreads;
        if (p < packs) {
          v[u] = src[p];
          w[u] = row.seen ? __ldg(row.seen + ((p * kVec) >> 5)) : 0u;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int p = p0 + u * kThreads;
        if (p >= packs) continue;
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          const int i = p * kVec + j;
          f(i, row.process(to_f(v[u].v[j]), w[u], i));
        }
      }
    }
    scalar_from = packs * kVec;
  }
  for (int i0 = scalar_from + int(threadIdx.x); i0 < row.vocab; i0 += kUnroll * kThreads) {
    float raw[kUnroll];
    uint32_t w[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * kThreads;
      if (i < row.vocab) {
        raw[u] = to_f(row.logits[i]);
        w[u] = row.seen ? __ldg(row.seen + (i >> 5)) : 0u;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * kThreads;
      if (i < row.vocab) f(i, row.process(raw[u], w[u], i));
    }
  }
}

// One slot of a shared counter per calling thread, with one atomic per warp: a whole row can
// pass the gather filter (long runs of equal bf16 logits) and must not serialise on one address.
__device__ __forceinline__ int claim_slot(int* counter) {
  const cooperative_groups::coalesced_group g = cooperative_groups::coalesced_threads();
  int base = 0;
  if (g.thread_rank() == 0) base = atomicAdd(counter, int(g.size()));
  return g.shfl(base, 0) + int(g.thread_rank());
}

// ---- block-wide integer scan (every thread gets its prefix) ---------------------------------

// Exclusive prefix sum over the threads in index order; *total gets the sum of all.
__device__ __forceinline__ uint64_t block_exclusive_scan_u64(uint64_t v, BlockShared& sh, uint64_t* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint64_t incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  __syncthreads();
  if (lane == 31) sh.red[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    uint64_t w = lane < kWarps ? sh.red[lane] : 0u;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const uint64_t t = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += t;
    }
    if (lane < kWarps) sh.red[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  *total = sh.red[kWarps - 1];
  return (warp == 0 ? 0 : sh.red[warp - 1]) + incl - v;
}

// Sorts a[0, n) descending, n a power of two; the caller has synchronised after writing a.
__device__ void bitonic_sort_desc(uint64_t* a, int n) {
  for (int k = 2; k <= n; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int t = threadIdx.x; t < n / 2; t += kThreads) {
        const int lo = 2 * t - (t & (j - 1));  // bit j of lo is clear; its partner is lo + j
        const uint64_t x = a[lo], y = a[lo + j];
        const bool descending = (lo & k) == 0;
        if (descending ? x < y : x > y) {
          a[lo] = y;
          a[lo + j] = x;
        }
      }
      __syncthreads();
    }
}

// ---- radix search (the wide path) -------------------------------------------------------------

// Bins are visited in descending digit order; weights are masses or counts. Finds the digit
// whose cumulative interval contains `rem` and returns it with the weight of the bins before it.
// Bins per thread: nbins / kThreads (nbins is 1024 or 4096).
__device__ int find_bin(const WideSmem& w, int nbins, bool by_mass, uint64_t rem, BlockShared& sh,
                        uint64_t* ahead) {
  const int per = nbins / kThreads, first = threadIdx.x * per;  // descending positions
  uint64_t local = 0;
  for (int j = first; j < first + per; ++j) {
    const int d = nbins - 1 - j;
    local += by_mass ? w.mass[d] : uint64_t(w.count[d]);
  }
  if (threadIdx.x == 0) {
    sh.i32[0] = 0;  // stays 0 only when rem is beyond the total (invalid rows)
    sh.u64[0] = 0;
  }
  uint64_t total;
  uint64_t cum = block_exclusive_scan_u64(local, sh, &total);  // syncs before anyone writes below
  for (int j = first; j < first + per; ++j) {
    const int d = nbins - 1 - j;
    const uint64_t wt = by_mass ? w.mass[d] : uint64_t(w.count[d]);
    if (wt > 0 && cum <= rem && rem < cum + wt) {  // exactly one bin of one thread
      sh.i32[0] = d;
      sh.u64[0] = cum;
    }
    cum += wt;
  }
  __syncthreads();
  const int digit = sh.i32[0];
  *ahead = sh.u64[0];
  __syncthreads();  // sh is reused by the next call
  return digit;
}

__device__ void clear_bins(WideSmem& w, int nbins, bool with_ids) {
  __syncthreads();  // every thread is done reading the previous search's bins
  for (int d = threadIdx.x; d < nbins; d += kThreads) {
    w.mass[d] = 0;
    w.count[d] = 0;
    if (with_ids) w.max_id[d] = 0;
  }
  __syncthreads();
}

struct Located {
  uint32_t key;     // order key of the token's processed logit
  uint32_t id;      // valid when asked for
  uint64_t before;  // weight strictly ahead of it in the order
  uint64_t weight;  // its own weight (mass, or 1 when counting)
};

// The token whose interval [before, before + weight) contains `target`, in the sampling order over
// the tokens with order key ≥ floor_key; weights are integer masses (by_mass) or 1. Tokens of
// equal logit have equal weight, so the position inside the final group is a division; the id at
// that position comes from the tracked maximum (position 0) or from two more digits over the ids.
template <class T>
__device__ Located radix_locate(const RowReader<T>& row, float m, bool by_mass, uint32_t floor_key, uint64_t target,
                                bool need_id, WideSmem& w, BlockShared& sh) {
  uint32_t prefix = 0, prefix_mask = 0;
  uint64_t ahead = 0;
  int digit = 0;
  for (int round = 0; round < 3; ++round) {
    const int shift = round == 0 ? 20 : round == 1 ? 10 : 0, nbins = round == 0 ? kTopBins : kBins;
    const bool last = round == 2;
    clear_bins(w, nbins, last);
    for_each_logit(row, [&](int i, float x) {
      const uint32_t key = sampling_order_key(x);
      if (key < floor_key || (key & prefix_mask) != prefix) return;
      const uint64_t wt = by_mass ? sampling_mass(x - m) : 1u;
      if (wt == 0) return;
      const int d = int(key >> shift) & (nbins - 1);
      if (by_mass) atomicAdd(reinterpret_cast<unsigned long long*>(&w.mass[d]), (unsigned long long)wt);
      atomicAdd(&w.count[d], 1u);
      if (last) atomicMax(&w.max_id[d], uint32_t(i));
    });
    __syncthreads();
    uint64_t ahead_here;
    digit = find_bin(w, nbins, by_mass, target - ahead, sh, &ahead_here);
    ahead += ahead_here;
    prefix |= uint32_t(digit) << shift;
    prefix_mask |= uint32_t(nbins - 1) << shift;
  }
  const uint32_t group = max(w.count[digit], 1u);
  const uint64_t each = by_mass ? max(w.mass[digit] / group, uint64_t(1)) : 1u;
  const uint64_t pos = (target - ahead) / each;  // 0-based, descending id order
  Located out{prefix, w.max_id[digit], ahead + pos * each, each};
  if (!need_id || pos == 0) return out;
  __syncthreads();  // everyone has read the bins

  // The pos-th largest id among the tokens with this exact logit.
  uint32_t id_prefix = 0, id_mask = 0;
  uint64_t rank = pos;
  for (int shift = 12; shift >= 0; shift -= 12) {
    clear_bins(w, kIdBins, false);
    for_each_logit(row, [&](int i, float x) {
      if (sampling_order_key(x) != prefix || (uint32_t(i) & id_mask) != id_prefix) return;
      atomicAdd(&w.count[(i >> shift) & (kIdBins - 1)], 1u);
    });
    __syncthreads();
    uint64_t ahead_here;
    const int d = find_bin(w, kIdBins, false, rank, sh, &ahead_here);
    rank -= ahead_here;
    id_prefix |= uint32_t(d) << shift;
    id_mask |= uint32_t(kIdBins - 1) << shift;
  }
  out.id = id_prefix;
  return out;
}

// ---- the two paths ------------------------------------------------------------------------------

__device__ void write_result(const Params& p, int row, uint32_t id, float d, uint64_t total) {
  p.out_ids[row] = int32_t(min(id, uint32_t(p.vocab - 1)));
  if (p.out_logprobs) p.out_logprobs[row] = float(double(d) - sampling_log_norm(total));
}

// The tokens in keys[0, n) include every token the cuts can keep: sort them and finish here.
__device__ void finish_small(const Params& p, int row, int n, float m, uint32_t draw24, SmallSmem& s,
                             BlockShared& sh) {
  int padded = 1;
  while (padded < n) padded <<= 1;
  for (int j = n + threadIdx.x; j < padded; j += kThreads) s.keys[j] = 0;  // below every real key
  if (threadIdx.x == 0) {
    sh.i32[1] = n;  // tokens kept by top-k
    sh.i32[2] = 0;  // tokens kept by top-p (set below)
    sh.i32[3] = 0;  // drawn position
  }
  __syncthreads();
  bitonic_sort_desc(s.keys, padded);

  if (p.top_k > 0) {  // keep the ties of the k-th logit: the group ends where the key drops
    const uint32_t kth = uint32_t(s.keys[p.top_k - 1] >> 32);
    for (int j = threadIdx.x; j < n; j += kThreads)
      if (uint32_t(s.keys[j] >> 32) >= kth && (j + 1 == n || uint32_t(s.keys[j + 1] >> 32) < kth)) sh.i32[1] = j + 1;
    __syncthreads();
  }
  const int n_k = sh.i32[1];

  // Inclusive cumulative masses over contiguous chunks, then across chunks.
  const int per = (padded + kThreads - 1) / kThreads, first = threadIdx.x * per;
  const int end = min(first + per, padded);
  uint64_t run = 0;
  for (int j = first; j < end; ++j) {
    run += j < n_k ? sampling_mass(sampling_key_float(uint32_t(s.keys[j] >> 32)) - m) : 0u;
    s.incl[j] = run;
  }
  uint64_t all;
  const uint64_t offset = block_exclusive_scan_u64(run, sh, &all);
  for (int j = first; j < end; ++j) s.incl[j] += offset;
  __syncthreads();

  const uint64_t total_k = s.incl[n_k - 1];
  const uint64_t bound = p.use_top_p ? sampling_top_p_bound(total_k, p.top_p) : total_k + 1;
  for (int j = threadIdx.x; j < n_k; j += kThreads) {
    const uint64_t before = j == 0 ? 0 : s.incl[j - 1];
    if (before < bound && (j + 1 == n_k || s.incl[j] >= bound)) sh.i32[2] = j + 1;
  }
  __syncthreads();
  const int n_p = max(sh.i32[2], 1);
  const uint64_t total = s.incl[n_p - 1];
  const uint64_t target = sampling_target(total, draw24);
  for (int j = threadIdx.x; j < n_p; j += kThreads) {
    const uint64_t before = j == 0 ? 0 : s.incl[j - 1];
    if (before <= target && target < s.incl[j]) sh.i32[3] = j;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint64_t key = s.keys[sh.i32[3]];
    write_result(p, row, uint32_t(key), sampling_key_float(uint32_t(key >> 32)) - m, total);
  }
}

template <class T>
__device__ void finish_wide(const Params& p, const RowReader<T>& reader, int row, float m, uint32_t draw24,
                            WideSmem& w, BlockShared& sh) {
  uint32_t floor_key = 0;
  if (p.top_k > 0) floor_key = radix_locate(reader, m, false, 0, uint64_t(p.top_k - 1), false, w, sh).key;
  uint64_t local = 0;
  for_each_logit(reader, [&](int, float x) {
    if (sampling_order_key(x) >= floor_key) local += sampling_mass(x - m);
  });
  uint64_t total = block_sum(local, sh.red);
  if (p.use_top_p) {  // the last kept token holds the bound's last unit of mass
    const Located cut = radix_locate(reader, m, true, floor_key, sampling_top_p_bound(total, p.top_p) - 1,
                                     false, w, sh);
    total = cut.before + cut.weight;
  }
  __syncthreads();
  const Located c = radix_locate(reader, m, true, floor_key, sampling_target(total, draw24), true, w, sh);
  if (threadIdx.x == 0) write_result(p, row, c.id, sampling_key_float(c.key) - m, total);
}

// ---- kernels --------------------------------------------------------------------------------------

template <class T>
__device__ RowReader<T> row_reader(const Params& p, int row, bool greedy) {
  return RowReader<T>{static_cast<const T*>(p.logits) + int64_t(row) * p.vocab,
                      p.seen ? p.seen + int64_t(row) * p.words : nullptr,
                      p.vocab,
                      p.packed,
                      p.rp,
                      p.rp_inv,
                      greedy ? 1.0f : p.temp_inv};
}

template <class T>
__global__ void __launch_bounds__(kThreads, 1) sample_kernel(Params p) {
  extern __shared__ uint4 smem_raw[];
  SampleSmem& s = *reinterpret_cast<SampleSmem*>(smem_raw);
  __shared__ BlockShared sh;
  const int row = blockIdx.x;
  const RowReader<T> reader = row_reader<T>(p, row, false);
  const uint32_t draw24 = philox_u32(p.seed, p.offset, uint64_t(row)) >> 8;

  uint32_t thread_max = 0;  // order key; 0 is below every float's key
  for_each_logit<8>(reader, [&](int, float x) { thread_max = max(thread_max, sampling_order_key(x)); });
  const float m = sampling_key_float(uint32_t(block_max(uint64_t(thread_max), sh.red)));

  // Lower bound on the k-th largest logit: the k-th largest of the per-thread maxima (k distinct
  // tokens reach it). With no usable bound, small rows gather everything.
  bool gather = false;
  uint32_t bound_key = 0;
  if (p.top_k > 0 && p.top_k <= kThreads) {
    s.small.keys[threadIdx.x] = (uint64_t(thread_max) << 32) | threadIdx.x;
    __syncthreads();
    bitonic_sort_desc(s.small.keys, kThreads);
    bound_key = uint32_t(s.small.keys[p.top_k - 1] >> 32);
    gather = true;
  } else if (p.vocab <= kCandidates) {
    gather = true;
  }
  if (gather) {
    if (threadIdx.x == 0) sh.i32[0] = 0;
    __syncthreads();  // also: every thread has read bound_key before keys are overwritten
    for_each_logit<8>(reader, [&](int i, float x) {
      const uint32_t key = sampling_order_key(x);
      if (key < bound_key) return;
      const int slot = claim_slot(&sh.i32[0]);  // counts past kCandidates: then the wide path runs
      if (slot < kCandidates) s.small.keys[slot] = (uint64_t(key) << 32) | uint32_t(i);
    });
    __syncthreads();
    const int n = sh.i32[0];
    __syncthreads();  // sh.i32[0] is reused below
    if (n <= kCandidates) return finish_small(p, row, n, m, draw24, s.small, sh);
  }
  finish_wide(p, reader, row, m, draw24, s.wide, sh);
}

// Argmax of the penalised logits (ties: lowest id) and, when asked, its log-softmax.
template <class T>
__global__ void __launch_bounds__(kThreads, 1) greedy_kernel(Params p) {
  __shared__ BlockShared sh;
  const int row = blockIdx.x;
  const RowReader<T> reader = row_reader<T>(p, row, true);
  uint64_t best = 0;  // (order key << 32) | ~id: the largest is the max logit with the lowest id
  for_each_logit<8>(reader, [&](int i, float x) {
    best = max(best, (uint64_t(sampling_order_key(x)) << 32) | (0xffffffffu - uint32_t(i)));
  });
  best = block_max(best, sh.red);
  const float m = sampling_key_float(uint32_t(best >> 32));
  uint64_t total = 0;
  if (p.out_logprobs) {
    uint64_t local = 0;
    for_each_logit(reader, [&](int, float x) { local += sampling_mass(x - m); });
    total = block_sum(local, sh.red);
  }
  if (threadIdx.x == 0) write_result(p, row, 0xffffffffu - uint32_t(best), 0.0f, total);
}

__global__ void mark_seen_kernel(uint32_t* seen, int64_t words, const int32_t* ids, int64_t rows, int64_t per_row) {
  const int64_t n = rows * per_row;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int32_t v = ids[k];
    if (v < 0 || int64_t(v) >= words * 32) continue;  // padding, or out of range (the CPU throws)
    atomicOr(seen + (k / per_row) * words + (v >> 5), 1u << (v & 31));
  }
}

}  // namespace

void sampling_forward(Ctx& ctx, const SamplingArgs& a) {
  const int64_t rows = a.logits.dim(0), vocab = a.logits.dim(1);
  const bool greedy = a.greedy || a.temperature == 0.0f;
  Params p{};
  p.logits = a.logits.data;
  p.seen = a.repetition_penalty != 1.0f ? dptr<uint32_t>(a.seen) : nullptr;
  p.words = sampling_seen_words(vocab);
  p.out_ids = dptr<int32_t>(a.out_ids);
  p.out_logprobs = a.out_logprobs.defined() ? dptr<float>(a.out_logprobs) : nullptr;
  p.vocab = int(vocab);
  p.top_k = a.top_k >= vocab ? 0 : int(a.top_k);
  p.packed = is_aligned16(a.logits.data) && (vocab * int64_t(dtype_size(a.logits.dtype))) % 16 == 0;
  p.use_top_p = a.top_p < 1.0;
  p.top_p = sampling_top_p_fraction(a.top_p);
  p.rp = a.repetition_penalty;
  p.rp_inv = 1.0f / a.repetition_penalty;
  p.temp_inv = greedy ? 1.0f : 1.0f / a.temperature;
  p.seed = ctx.seed;
  p.offset = a.rng_offset;
  dispatch_cuda_float(a.logits.dtype, "sampling_forward", [&](auto t) {
    using T = decltype(t);
    CHECK(rows <= 0x7fffffff, "sampling: too many rows");
    if (greedy) {
      greedy_kernel<T><<<unsigned(rows), kThreads, 0, stream_of(ctx)>>>(p);
    } else {
      const int smem = int(sizeof(SampleSmem));
      CUDA_CHECK(cudaFuncSetAttribute(sample_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      sample_kernel<T><<<unsigned(rows), kThreads, smem, stream_of(ctx)>>>(p);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void sampling_mark_seen(Ctx& ctx, const Tensor& seen, const Tensor& ids) {
  const int64_t rows = seen.dim(0), per_row = ids.numel() / rows;
  const int threads = 256;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(ceil_div(rows * per_row, threads), 132 * 8));
  mark_seen_kernel<<<unsigned(blocks), threads, 0, stream_of(ctx)>>>(dptr<uint32_t>(seen), seen.dim(1),
                                                                     dptr<int32_t>(ids), rows, per_row);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::cuda
