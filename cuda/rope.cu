#include "core/ops/rope.h"
#include "core/ops/rope_math.h"
#include "cuda/common.cuh"
#include "cuda/vec_access.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kMaxPairs = 128;       // head dim <= 256 (checked by the dispatcher)
constexpr int kHeadsPerThread = 4;   // one cos/sin evaluation serves this many heads
constexpr int kThreads = 256;

// HF's float32 inv_freq, computed on the host (rope_inv_freq) and passed by value: no upload,
// no shared state between launches on different streams.
struct InvFreqTable {
  float v[kMaxPairs];
};

struct Geometry {
  int64_t T, H, d, rot, pos_offset;
  int units_rot;  // threads per (token, head group) that rotate N pairs each
  int units;      // units_rot + the pass-through units (N dims each) of dims [rot, d)
  int head_groups;
  bool in_heads_first, out_heads_first, inverse;
};

template <class Idx>
__device__ __forceinline__ Idx row_offset(const Geometry& g, Idx b, Idx t, Idx h, bool heads_first) {
  return (heads_first ? (b * Idx(g.H) + h) * Idx(g.T) + t : (b * Idx(g.T) + t) * Idx(g.H) + h) * Idx(g.d);
}

// Thread = (token, head group, unit). A rotary unit owns pairs [i0, i0 + N): it evaluates their
// N angles once and applies them to up to kHeadsPerThread heads, loading every head's two packs
// before rotating so that 2·kHeadsPerThread 16-byte loads are in flight. Rotate-half: the packs
// are x[i0..] and x[rot/2 + i0..]; interleaved: the 2N contiguous dims 2·i0 .. 2·i0 + 2N − 1.
// A pass-through unit copies N dims of [rot, d) (not launched when rotating in place). Each
// thread reads exactly the positions it writes, so in place (out == in) is race-free.
template <class T, int N, bool kInterleaved, class Idx>
__global__ void rope_kernel(T* out, const T* in, const int32_t* positions, Geometry g,
                            InvFreqTable table, Idx total) {
  __shared__ float inv_freq[kMaxPairs];
  for (int i = threadIdx.x; i < g.rot / 2; i += blockDim.x) inv_freq[i] = table.v[i];
  __syncthreads();

  const Idx stride = Idx(gridDim.x) * Idx(blockDim.x);
  for (Idx gid = Idx(blockIdx.x) * Idx(blockDim.x) + Idx(threadIdx.x); gid < total; gid += stride) {
    const Idx unit = gid % Idx(g.units), rest = gid / Idx(g.units);
    const Idx group = rest % Idx(g.head_groups), token = rest / Idx(g.head_groups);
    const Idx b = token / Idx(g.T), t = token - b * Idx(g.T);
    const Idx h0 = group * kHeadsPerThread;
    const int heads = int(min(Idx(kHeadsPerThread), Idx(g.H) - h0));

    if (unit < Idx(g.units_rot)) {
      const int i0 = int(unit) * N;
      const Idx off1 = kInterleaved ? Idx(2 * i0) : Idx(i0);
      const Idx off2 = kInterleaved ? Idx(2 * i0 + N) : Idx(g.rot / 2 + i0);
      Pack<T, N> lo[kHeadsPerThread], hi[kHeadsPerThread];
#pragma unroll
      for (int j = 0; j < kHeadsPerThread; ++j) {
        if (j < heads) {
          const T* x = in + row_offset<Idx>(g, b, t, h0 + j, g.in_heads_first);
          lo[j] = load_pack<N>(x + off1);
          hi[j] = load_pack<N>(x + off2);
        }
      }
      // The angles after the loads are issued: sincosf's range reduction branches, and loads
      // placed after it would wait for it.
      const int64_t pos = positions ? int64_t(positions[token]) : g.pos_offset + int64_t(t);
      float c[N], s[N];
#pragma unroll
      for (int k = 0; k < N; ++k) rope_cos_sin<float>(pos, inv_freq[i0 + k], g.inverse, &c[k], &s[k]);
#pragma unroll
      for (int j = 0; j < kHeadsPerThread; ++j) {
        if (j < heads) {
          // Interleaved: lo ++ hi is the run of 2N dims and pair k is (run[2k], run[2k+1])
          // (for N = 1 the two halves of the pair sit in different packs). Rotate-half: pair k
          // is (lo[k], hi[k]).
          T* y = out + row_offset<Idx>(g, b, t, h0 + j, g.out_heads_first);
          Pack<T, N> ylo, yhi;
#pragma unroll
          for (int k = 0; k < N; ++k) {
            float x1, x2, y1, y2;
            if constexpr (kInterleaved) {
              x1 = to_f(2 * k < N ? lo[j].v[(2 * k) % N] : hi[j].v[(2 * k) % N]);
              x2 = to_f(2 * k + 1 < N ? lo[j].v[(2 * k + 1) % N] : hi[j].v[(2 * k + 1) % N]);
            } else {
              x1 = to_f(lo[j].v[k]);
              x2 = to_f(hi[j].v[k]);
            }
            rope_rotate<float>(x1, x2, c[k], s[k], &y1, &y2);
            if constexpr (kInterleaved) {
              (2 * k < N ? ylo : yhi).v[(2 * k) % N] = from_f<T>(y1);
              (2 * k + 1 < N ? ylo : yhi).v[(2 * k + 1) % N] = from_f<T>(y2);
            } else {
              ylo.v[k] = from_f<T>(y1);
              yhi.v[k] = from_f<T>(y2);
            }
          }
          store_pack<N>(y + off1, ylo);
          store_pack<N>(y + off2, yhi);
        }
      }
    } else {
      const Idx off = Idx(g.rot) + (unit - Idx(g.units_rot)) * N;
      Pack<T, N> v[kHeadsPerThread];
#pragma unroll
      for (int j = 0; j < kHeadsPerThread; ++j)
        if (j < heads) v[j] = load_pack<N>(in + row_offset<Idx>(g, b, t, h0 + j, g.in_heads_first) + off);
#pragma unroll
      for (int j = 0; j < kHeadsPerThread; ++j)
        if (j < heads) store_pack<N>(out + row_offset<Idx>(g, b, t, h0 + j, g.out_heads_first) + off, v[j]);
    }
  }
}

template <class T, int N, bool kInterleaved>
void launch(Ctx& ctx, const RopePlan& p, T* out, const T* in, const InvFreqTable& table) {
  Geometry g{p.T, p.H, p.d, p.rot, p.pos_offset, 0, 0, 0, p.in_heads_first, p.out_heads_first, p.inverse};
  const bool in_place = static_cast<const void*>(out) == static_cast<const void*>(in);
  g.units_rot = int(p.rot / (2 * N));
  g.units = g.units_rot + (in_place ? 0 : int((p.d - p.rot) / N));
  g.head_groups = int(ceil_div(p.H, kHeadsPerThread));
  const int64_t total = p.B * p.T * g.head_groups * g.units;
  const int64_t blocks = grid_for(total, kThreads);
  // 32-bit index arithmetic (cheaper div/mod) whenever every element offset fits.
  if (total < (int64_t(1) << 31) && p.in.numel() < (int64_t(1) << 31)) {
    rope_kernel<T, N, kInterleaved, int32_t><<<blocks, kThreads, 0, stream_of(ctx)>>>(
        out, in, p.positions, g, table, int32_t(total));
  } else {
    rope_kernel<T, N, kInterleaved, int64_t><<<blocks, kThreads, 0, stream_of(ctx)>>>(
        out, in, p.positions, g, table, total);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_apply(Ctx& ctx, const RopePlan& p) {
  CHECK(p.rot / 2 <= kMaxPairs, "rope: rotary_dim ", p.rot, " exceeds the kernel's ", 2 * kMaxPairs);
  InvFreqTable table{};
  rope_inv_freq<float>(p.theta, p.rot, table.v);
  dispatch_cuda_float(p.out.dtype, p.inverse ? "rope_backward" : "rope_forward", [&](auto tag) {
    using T = decltype(tag);
    T* out = dptr<T>(p.out);
    const T* in = dptr<T>(p.in);
    constexpr int V = kVec16<T>;
    const bool vec = p.rot % (2 * V) == 0 && p.d % V == 0 && is_aligned16(out) && is_aligned16(in);
    if (p.interleaved) {
      if (vec) launch<T, V, true>(ctx, p, out, in, table);
      else launch<T, 1, true>(ctx, p, out, in, table);
    } else {
      if (vec) launch<T, V, false>(ctx, p, out, in, table);
      else launch<T, 1, false>(ctx, p, out, in, table);
    }
  });
}

}  // namespace attnlab::cuda
