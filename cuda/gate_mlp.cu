// The three uncertainty gates (q, k, v) of the two-pass layer. fc1 and the parameter / fc2-input
// gradient products are cuBLASLt GEMMs, one per gate; everything per element is a hand-written
// kernel that handles all three gates in one launch, so x (and, backward, a2/da1) is read once.
//
// The per-element kernels tile [rows, D] as (32 columns) × (32 rows): a warp reads 32 adjacent
// columns of a row (coalesced), each thread keeps its column's 3×16 fc2 (or fc1) weights in
// registers, and the block's 32×48 hidden values sit in shared memory, read as broadcasts.
#include <climits>

#include "core/ops/gate_mlp.h"
#include "core/ops/gate_mlp_math.h"
#include "core/ops/matmul.h"
#include "cuda/common.cuh"
#include "cuda/reduce.cuh"

namespace attnlab::cuda {

namespace {

constexpr int H = int(kGateHidden);
constexpr int G = kNumGates;
constexpr int HG = G * H;
constexpr int kColThreads = 32;    // threads across D
constexpr int kRowLanes = 8;       // threads across rows
constexpr int kRowsPerBlock = 32;  // rows one block sweeps
constexpr int kThreads = kColThreads * kRowLanes;

template <class T>
struct GateSet {  // the three gates' parameters
  const T* w1[G];
  const T* b1[G];
  const T* w2[G];
  const T* b2[G];
};
template <class T>
struct PerGate {  // one [rows, D] tensor per gate
  T* p[G];
};

template <class T>
GateSet<T> gate_set(const GateParams (&gate)[G]) {
  GateSet<T> s;
  for (int g = 0; g < G; ++g) {
    s.w1[g] = dptr<T>(gate[g].fc1_w);
    s.b1[g] = dptr<T>(gate[g].fc1_b);
    s.w2[g] = dptr<T>(gate[g].fc2_w);
    s.b2[g] = dptr<T>(gate[g].fc2_b);
  }
  return s;
}

// fc1 finish: a1[r, g, j] (= x·A1_g[:, :D]ᵀ from the GEMM) += u[r]·A1_g[j, D] + c1_g[j].
template <class T>
__global__ void gate_fc1_finish_kernel(float* a1, const float* u, GateSet<T> gs, int64_t rows, int64_t D) {
  const int64_t n = rows * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / H;
    const int j = int(i % H);
    const float ur = u[r];
#pragma unroll
    for (int g = 0; g < G; ++g)
      a1[r * HG + g * H + j] += ur * to_f(gs.w1[g][j * (D + 1) + D]) + to_f(gs.b1[g][j]);
  }
}

// Loads the block's rows of a1 as a2 = gelu(a1) into shared memory; optionally also stores them
// (as T) to a2_out, which only one column block does.
template <class T>
__device__ __forceinline__ void load_hidden(float (*s)[HG], const float* src, int64_t r0, int nr, bool apply_gelu,
                                            T* a2_out) {
  const int tid = threadIdx.y * kColThreads + threadIdx.x;
  for (int i = tid; i < nr * HG; i += kThreads) {
    const float v = src[r0 * HG + i];
    const float h = apply_gelu ? gelu_erf<float>(v) : v;
    s[i / HG][i % HG] = h;
    if (a2_out) a2_out[r0 * HG + i] = from_f<T>(h);
  }
}

// This thread's column d of the three fc2 layers in registers: weights w[g][0..H) and bias c[g]
// (zeros for an inactive column, d ≥ D).
template <class T>
__device__ __forceinline__ void load_fc2_column(const GateSet<T>& gs, int64_t d, bool active, float (&w)[G][H],
                                                float (&c)[G]) {
#pragma unroll
  for (int g = 0; g < G; ++g) {
    c[g] = active ? to_f(gs.b2[g][d]) : 0.f;
#pragma unroll
    for (int j = 0; j < H; ++j) w[g][j] = active ? to_f(gs.w2[g][d * H + j]) : 0.f;
  }
}

// The row walk of the per-element kernels: each of the grid's row chunks has its a2 = gelu(a1)
// loaded into a2s (and stored to a2_out when given), then row(rr, i) runs for this thread's rows
// rr of the chunk, i = the element (r0 + rr, d), when its column is active.
template <class T, class Row>
__device__ __forceinline__ void for_each_row(float (*a2s)[HG], const float* a1, int64_t rows, int64_t D, int64_t d,
                                             bool active, T* a2_out, Row row) {
  const int64_t chunks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  for (int64_t ch = blockIdx.y; ch < chunks; ch += gridDim.y) {
    const int64_t r0 = ch * kRowsPerBlock;
    const int nr = int(min(int64_t(kRowsPerBlock), rows - r0));
    __syncthreads();  // the previous chunk's readers are done with a2s
    load_hidden<T>(a2s, a1, r0, nr, true, a2_out);
    __syncthreads();
    if (!active) continue;
    for (int rr = threadIdx.y; rr < nr; rr += kRowLanes) row(rr, (r0 + rr) * D + d);
  }
}

// y_g = x ⊙ (1 + 0.2·tanh(a2_g A2_gᵀ + c2_g)) for the three gates.
template <class T>
__global__ void __launch_bounds__(kThreads, 2)
    gate_apply_kernel(PerGate<T> y, const T* x, const float* a1, GateSet<T> gs, int64_t rows, int64_t D) {
  __shared__ float a2s[kRowsPerBlock][HG];
  const int64_t d = int64_t(blockIdx.x) * kColThreads + threadIdx.x;
  const bool active = d < D;
  float w[G][H], c[G];
  load_fc2_column(gs, d, active, w, c);
  for_each_row<T>(a2s, a1, rows, D, d, active, nullptr, [&](int rr, int64_t i) {
    const float xv = to_f(x[i]);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float adj = gate_adj<float>(gate_fc2_row<float>(w[g], c[g], &a2s[rr][g * H]));
      y.p[g][i] = from_f<T>(xv * (1.f + adj));
    }
  });
}

// ‖adj_g‖₂ per row: one block per row (analysis only; decode steps have a single row).
template <class T>
__global__ void gate_adj_norm_kernel(float* norm, const float* a1, GateSet<T> gs, int64_t rows, int64_t D) {
  __shared__ float a2s[HG];
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    __syncthreads();
    if (threadIdx.x < HG) a2s[threadIdx.x] = gelu_erf<float>(a1[r * HG + threadIdx.x]);
    __syncthreads();
    float sq[G] = {0.f, 0.f, 0.f};
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float adj = gate_adj<float>(gate_fc2_row<float>(gs.w2[g] + d * H, to_f(gs.b2[g][d]), &a2s[g * H]));
        sq[g] += adj * adj;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float t = block_sum(sq[g], red);
      if (threadIdx.x == 0) norm[r * G + g] = sqrtf(t);
    }
  }
}

// Backward, per element: da3_g = dy_g·x·0.2(1 − t_g²) (may overwrite dy_g in place) and
// dx = Σ_g dy_g(1 + adj_g) (+ dx when accumulating). Column block 0 also stores a2 as T for the
// fc2 weight-gradient GEMM.
template <class T>
__global__ void __launch_bounds__(kThreads)
    gate_backward_elem_kernel(PerGate<T> da3, PerGate<const T> dy, T* dx, T* a2_out, const T* x, const float* a1,
                              GateSet<T> gs, int64_t rows, int64_t D, bool accumulate) {
  __shared__ float a2s[kRowsPerBlock][HG];
  const int64_t d = int64_t(blockIdx.x) * kColThreads + threadIdx.x;
  const bool active = d < D;
  float w[G][H], c[G];
  load_fc2_column(gs, d, active, w, c);
  for_each_row<T>(a2s, a1, rows, D, d, active, blockIdx.x == 0 ? a2_out : nullptr, [&](int rr, int64_t i) {
    const float xv = to_f(x[i]);
    float sum = accumulate ? to_f(dx[i]) : 0.f;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float a3 = gate_fc2_row<float>(w[g], c[g], &a2s[rr][g * H]);
      float direct, d3;
      gate_elem_grad<float>(a3, xv, to_f(dy.p[g][i]), &direct, &d3);
      da3.p[g][i] = from_f<T>(d3);
      sum += direct;
    }
    dx[i] = from_f<T>(sum);
  });
}

// da1 = da2 ⊙ gelu'(a1), in place over the f32 da2 and as T (for the fc1 weight-gradient GEMM).
template <class T>
__global__ void gate_gelu_grad_kernel(float* da2, T* da1_t, const float* a1, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = da2[i] * gelu_erf_grad<float>(a1[i]);
    da2[i] = v;
    da1_t[i] = from_f<T>(v);
  }
}

struct Fc1SmallGrads {  // nullable per gate
  float* db1[G];
  float* dw1[G];  // the whole fc1_w gradient; the kernel adds to its u column
};

// fc1_b[j] += Σ_r da1[r, g, j] and fc1_w[j, D] += Σ_r da1[r, g, j]·u[r]; block (g·16 + j).
// A fixed-order block reduction: deterministic, no atomics.
__global__ void gate_fc1_small_grads_kernel(Fc1SmallGrads out, const float* da1, const float* u, int64_t rows,
                                            int64_t D) {
  __shared__ float red[32];
  const int k = blockIdx.x, gate = k / H, j = k % H;
  float s1 = 0.f, s2 = 0.f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const float v = da1[r * HG + k];
    s1 += v;
    s2 += v * u[r];
  }
  s1 = block_sum(s1, red);
  s2 = block_sum(s2, red);
  if (threadIdx.x != 0) return;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g != gate) continue;
    if (out.db1[g]) out.db1[g][j] += s1;
    if (out.dw1[g]) out.dw1[g][j * (D + 1) + D] += s2;
  }
}

// dx += Σ_g da1_g·A1_g[:, :D] (the u column is dropped: u gets no gradient).
template <class T>
__global__ void __launch_bounds__(kThreads)
    gate_dx_fc1_kernel(T* dx, const float* da1, GateSet<T> gs, int64_t rows, int64_t D) {
  __shared__ float s[kRowsPerBlock][HG];
  const int64_t d = int64_t(blockIdx.x) * kColThreads + threadIdx.x;
  const bool active = d < D;
  float w[HG];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int j = 0; j < H; ++j) w[g * H + j] = active ? to_f(gs.w1[g][j * (D + 1) + d]) : 0.f;
  const int64_t chunks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  for (int64_t ch = blockIdx.y; ch < chunks; ch += gridDim.y) {
    const int64_t r0 = ch * kRowsPerBlock;
    const int nr = int(min(int64_t(kRowsPerBlock), rows - r0));
    __syncthreads();
    load_hidden<T>(s, da1, r0, nr, false, nullptr);
    __syncthreads();
    if (!active) continue;
    for (int rr = threadIdx.y; rr < nr; rr += kRowLanes) {
      float acc = 0.f;
#pragma unroll
      for (int k = 0; k < HG; ++k) acc += w[k] * s[rr][k];
      const int64_t i = (r0 + rr) * D + d;
      dx[i] = from_f<T>(to_f(dx[i]) + acc);
    }
  }
}

dim3 tile_grid(int64_t rows, int64_t D) {
  return dim3(unsigned(ceil_div(D, kColThreads)), unsigned(std::min<int64_t>(ceil_div(rows, kRowsPerBlock), 65535)));
}
int64_t flat_grid(int64_t n) { return std::max<int64_t>(1, std::min<int64_t>(ceil_div(n, 256), 132 * 16)); }

// A 1-D view of `numel` elements starting `offset` elements into `base` (a column block of a
// row-major matrix with a wider ld, for the GEMMs).
Tensor sub(const Tensor& base, DType dt, size_t byte_offset, int64_t numel, const char* name) {
  return Tensor(static_cast<char*>(base.data) + byte_offset, dt, Device::cuda, {numel}, name);
}

}  // namespace

void gate_mlp_forward(Ctx& ctx, const GateMlpArgs& a, GateMlpSizes s) {
  const int64_t rows = s.rows, D = s.dim;
  CHECK(ceil_div(D, kColThreads) <= INT_MAX, "gate_mlp_forward: D=", D, " is too large");
  // fc1 without its u column and bias: a1[:, g, :] = x · A1_g[:, :D]ᵀ (f32 out).
  for (int g = 0; g < G; ++g) {
    MatmulArgs m;
    m.c = sub(a.a1, DType::f32, size_t(g * H) * sizeof(float), rows * HG - g * H, "a1");
    m.a = a.x;
    m.b = a.gate[g].fc1_w;
    m.M = rows, m.N = H, m.K = D;
    m.trans_b = true;
    m.ldb = D + 1, m.ldc = HG;
    attnlab::matmul(ctx, m);
  }
  dispatch_cuda_float(a.x.dtype, "gate_mlp_forward", [&](auto tag) {
    using T = decltype(tag);
    const GateSet<T> gs = gate_set<T>(a.gate);
    float* a1 = dptr<float>(a.a1);
    gate_fc1_finish_kernel<T><<<flat_grid(rows * H), 256, 0, stream_of(ctx)>>>(a1, dptr<float>(a.u), gs, rows, D);
    CUDA_CHECK_LAUNCH();
    PerGate<T> y{{dptr<T>(a.y[0]), dptr<T>(a.y[1]), dptr<T>(a.y[2])}};
    gate_apply_kernel<T><<<tile_grid(rows, D), dim3(kColThreads, kRowLanes), 0, stream_of(ctx)>>>(y, dptr<T>(a.x), a1,
                                                                                               gs, rows, D);
    CUDA_CHECK_LAUNCH();
    if (a.adj_norm.defined()) {
      gate_adj_norm_kernel<T><<<std::min<int64_t>(rows, 132 * 8), 256, 0, stream_of(ctx)>>>(
          dptr<float>(a.adj_norm), a1, gs, rows, D);
      CUDA_CHECK_LAUNCH();
    }
  });
}

void gate_mlp_backward(Ctx& ctx, const GateMlpBackwardArgs& a, GateMlpSizes s) {
  const int64_t rows = s.rows, D = s.dim;
  CHECK(ceil_div(D, kColThreads) <= INT_MAX, "gate_mlp_backward: D=", D, " is too large");
  const DType dt = a.x.dtype;
  // Scratch: [rows, 48] f32 (da2, then da1) followed by [rows, 48] of T (a2, then da1 as T).
  const size_t region1 = size_t(rows * HG) * sizeof(float);
  float* da2 = dptr<float>(a.scratch);
  auto hidden_f32 = [&](int g) { return sub(a.scratch, DType::f32, size_t(g * H) * sizeof(float), rows * HG - g * H, "da2"); };
  auto hidden_t = [&](int g) { return sub(a.scratch, dt, region1 + size_t(g * H) * dtype_size(dt), rows * HG - g * H, "a2"); };

  dispatch_cuda_float(dt, "gate_mlp_backward", [&](auto tag) {
    using T = decltype(tag);
    const GateSet<T> gs = gate_set<T>(a.gate);
    T* region1_t = reinterpret_cast<T*>(static_cast<char*>(a.scratch.data) + region1);
    PerGate<T> da3{{dptr<T>(a.da3[0]), dptr<T>(a.da3[1]), dptr<T>(a.da3[2])}};
    PerGate<const T> dy{{dptr<T>(a.dy[0]), dptr<T>(a.dy[1]), dptr<T>(a.dy[2])}};
    gate_backward_elem_kernel<T><<<tile_grid(rows, D), dim3(kColThreads, kRowLanes), 0, stream_of(ctx)>>>(
        da3, dy, dptr<T>(a.dx), region1_t, dptr<T>(a.x), dptr<float>(a.a1), gs, rows, D, a.accumulate_dx);
    CUDA_CHECK_LAUNCH();
  });

  for (int g = 0; g < G; ++g) {
    const GateGrads& q = a.grad[g];
    if (q.fc2_w.defined()) {  // dA2_g += da3_gᵀ · a2_g
      MatmulArgs m;
      m.c = q.fc2_w, m.a = a.da3[g], m.b = hidden_t(g);
      m.M = D, m.N = H, m.K = rows;
      m.trans_a = true;
      m.ldb = HG;
      m.beta = 1.f;
      attnlab::matmul(ctx, m);
    }
    if (q.fc2_b.defined()) bias_grad(ctx, a.da3[g], q.fc2_b, rows, D);
    MatmulArgs m;  // da2_g = da3_g · A2_g
    m.c = hidden_f32(g), m.a = a.da3[g], m.b = a.gate[g].fc2_w;
    m.M = rows, m.N = H, m.K = D;
    m.ldc = HG;
    attnlab::matmul(ctx, m);
  }

  bool any_small = false;
  Fc1SmallGrads small{};
  dispatch_cuda_float(dt, "gate_mlp_backward", [&](auto tag) {
    using T = decltype(tag);
    T* region1_t = reinterpret_cast<T*>(static_cast<char*>(a.scratch.data) + region1);
    gate_gelu_grad_kernel<T><<<flat_grid(rows * HG), 256, 0, stream_of(ctx)>>>(da2, region1_t, dptr<float>(a.a1),
                                                                              rows * HG);
    CUDA_CHECK_LAUNCH();
  });
  for (int g = 0; g < G; ++g) {
    const GateGrads& q = a.grad[g];
    if (q.fc1_w.defined()) {  // dA1_g[:, :D] += da1_gᵀ · x
      MatmulArgs m;
      m.c = q.fc1_w, m.a = hidden_t(g), m.b = a.x;
      m.M = H, m.N = D, m.K = rows;
      m.trans_a = true;
      m.lda = HG, m.ldc = D + 1;
      m.beta = 1.f;
      attnlab::matmul(ctx, m);
    }
    small.db1[g] = q.fc1_b.defined() ? dptr<float>(q.fc1_b) : nullptr;
    small.dw1[g] = q.fc1_w.defined() ? dptr<float>(q.fc1_w) : nullptr;
    any_small = any_small || small.db1[g] || small.dw1[g];
  }
  if (any_small) {
    gate_fc1_small_grads_kernel<<<HG, 256, 0, stream_of(ctx)>>>(small, da2, dptr<float>(a.u), rows, D);
    CUDA_CHECK_LAUNCH();
  }
  dispatch_cuda_float(dt, "gate_mlp_backward", [&](auto tag) {
    using T = decltype(tag);
    gate_dx_fc1_kernel<T><<<tile_grid(rows, D), dim3(kColThreads, kRowLanes), 0, stream_of(ctx)>>>(
        dptr<T>(a.dx), da2, gate_set<T>(a.gate), rows, D);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
