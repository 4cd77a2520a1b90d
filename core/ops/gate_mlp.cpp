#include "core/ops/gate_mlp.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/gate_mlp_math.h"

namespace attnlab {

namespace {

constexpr int64_t H = kGateHidden;
constexpr int64_t kHG = kNumGates * kGateHidden;  // 48 fc1 values per row
const char* const kGateNames[kNumGates] = {"q", "k", "v"};

bool overlaps(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return false;
  const char *a0 = static_cast<const char*>(a.data), *b0 = static_cast<const char*>(b.data);
  return a0 < b0 + b.bytes() && b0 < a0 + a.bytes();
}

void check_dtype(const char* op, const Tensor& t, DType want, const char* role) {
  CHECK(t.dtype == want, op, ": ", role, " '", t.name, "' is ", dtype_name(t.dtype), "; it must be ",
        dtype_name(want), " (x's dtype for activations and parameters, its accumulation dtype for "
        "u, a1, adj_norm, gradients and scratch)");
}

// A [rows, width] tensor, leading dims free: numel rows·width and last dim width.
void check_rows(const char* op, const Tensor& t, const char* role, int64_t rows, int64_t width, DType dt) {
  CHECK(t.defined(), op, ": ", role, " is not set");
  CHECK(t.ndim >= 1 && t.numel() == rows * width && (width == 1 || t.dim(-1) == width), op, ": ",
        role, " '", t.name, "' ", t.shape_str(), " must hold [", rows, ", ", width,
        "] (leading dims may be split)");
  check_dtype(op, t, dt, role);
}

// a1 is [rows, 3, 16] (or [rows, 48], or with leading dims split).
void check_a1(const char* op, const Tensor& t, int64_t rows, DType acc) {
  CHECK(t.defined(), op, ": a1 is not set");
  CHECK(t.numel() == rows * kHG && (t.dim(-1) == H || t.dim(-1) == kHG), op, ": a1 '", t.name, "' ",
        t.shape_str(), " must be [", rows, ", 3, 16]");
  check_dtype(op, t, acc, "a1");
}

GateMlpSizes sizes_of(const char* op, const Tensor& x) {
  CHECK(x.defined() && x.ndim >= 1, op, ": x is not set");
  GateMlpSizes s{0, x.dim(-1)};
  CHECK(s.dim > 0, op, ": x '", x.name, "' ", x.shape_str(), " has an empty last dim D");
  s.rows = x.numel() / s.dim;
  return s;
}

void check_params(const char* op, const GateParams& p, int g, int64_t dim, DType dt) {
  const Tensor* ts[] = {&p.fc1_w, &p.fc1_b, &p.fc2_w, &p.fc2_b};
  for (const Tensor* t : ts) {
    CHECK(t->defined(), op, ": a parameter of gate ", kGateNames[g], " is not set");
    check_dtype(op, *t, dt, "gate parameter");
  }
  check_shape(p.fc1_w, {H, dim + 1});
  check_shape(p.fc1_b, {H});
  check_shape(p.fc2_w, {dim, H});
  check_shape(p.fc2_b, {dim});
}

void check_grads(const char* op, const GateGrads& q, int64_t dim, DType acc) {
  if (q.fc1_w.defined()) check_shape(q.fc1_w, {H, dim + 1});
  if (q.fc1_b.defined()) check_shape(q.fc1_b, {H});
  if (q.fc2_w.defined()) check_shape(q.fc2_w, {dim, H});
  if (q.fc2_b.defined()) check_shape(q.fc2_b, {dim});
  for (const Tensor* t : {&q.fc1_w, &q.fc1_b, &q.fc2_w, &q.fc2_b})
    if (t->defined()) check_dtype(op, *t, acc, "gate gradient");
}

template <class T>
void forward_cpu(const GateMlpArgs& a, GateMlpSizes s) {
  using A = acc_t<T>;
  const int64_t rows = s.rows, D = s.dim;
  const T* x = a.x.ptr<T>();
  const A* u = a.u.ptr<A>();
  A* a1 = a.a1.ptr<A>();
  A* norm = a.adj_norm.defined() ? a.adj_norm.ptr<A>() : nullptr;
  const T *w1s[kNumGates], *b1s[kNumGates], *w2s[kNumGates], *b2s[kNumGates];
  T* ys[kNumGates];
  for (int g = 0; g < kNumGates; ++g) {
    w1s[g] = a.gate[g].fc1_w.ptr<T>(), b1s[g] = a.gate[g].fc1_b.ptr<T>();
    w2s[g] = a.gate[g].fc2_w.ptr<T>(), b2s[g] = a.gate[g].fc2_b.ptr<T>();
    ys[g] = a.y[g].ptr<T>();
  }
#pragma omp parallel for schedule(static) if (rows * D > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    for (int g = 0; g < kNumGates; ++g) {
      const T *w1 = w1s[g], *b1 = b1s[g], *w2 = w2s[g], *b2 = b2s[g];
      A a2[H];
      for (int64_t j = 0; j < H; ++j) {
        const T* wj = w1 + j * (D + 1);
        A acc = A(b1[j]) + A(wj[D]) * u[r];
        for (int64_t d = 0; d < D; ++d) acc += A(wj[d]) * A(xr[d]);
        a1[r * kHG + g * H + j] = acc;
        a2[j] = gelu_erf<A>(acc);
      }
      T* yr = ys[g] + r * D;
      A sq = 0;
      for (int64_t d = 0; d < D; ++d) {
        const A adj = gate_adj<A>(gate_fc2_row<A>(w2 + d * H, A(b2[d]), a2));
        yr[d] = T(A(xr[d]) * (A(1) + adj));
        sq += adj * adj;
      }
      if (norm) norm[r * kNumGates + g] = std::sqrt(sq);
    }
  }
}

// Parameter gradients of one gate, reductions over rows (double partials, like bias_grad):
//   fc2_w[d, j] += Σ_r da3[r, d]·a2[r, j],   fc2_b[d] += Σ_r da3[r, d]
//   fc1_w[j, c] += Σ_r da1[r, j]·[x_r, u_r][c],  fc1_b[j] += Σ_r da1[r, j]
// Parallel over column chunks so each thread owns its output columns (no races, fixed order).
template <class T>
void param_grads_cpu(const GateMlpBackwardArgs& a, GateMlpSizes s, int g, const T* a2, const T* da1) {
  const GateGrads& q = a.grad[g];
  const int64_t rows = s.rows, D = s.dim;
  const T* x = a.x.ptr<T>();
  const T* u = a.u.ptr<T>();
  const T* da3 = a.da3[g].ptr<T>();
  constexpr int64_t kChunk = 32;
  const int64_t chunks = (D + kChunk - 1) / kChunk;
  if (q.fc2_w.defined() || q.fc2_b.defined()) {
    T* dw2 = q.fc2_w.defined() ? q.fc2_w.ptr<T>() : nullptr;
    T* db2 = q.fc2_b.defined() ? q.fc2_b.ptr<T>() : nullptr;
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t d0 = ch * kChunk, d1 = std::min(D, d0 + kChunk);
      double acc[kChunk][H + 1] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T* a2r = a2 + r * kHG + g * H;
        for (int64_t d = d0; d < d1; ++d) {
          const double v = double(da3[r * D + d]);
          acc[d - d0][H] += v;
          for (int64_t j = 0; j < H; ++j) acc[d - d0][j] += v * double(a2r[j]);
        }
      }
      for (int64_t d = d0; d < d1; ++d) {
        if (dw2)
          for (int64_t j = 0; j < H; ++j) dw2[d * H + j] += T(acc[d - d0][j]);
        if (db2) db2[d] += T(acc[d - d0][H]);
      }
    }
  }
  if (q.fc1_w.defined()) {
    T* dw1 = q.fc1_w.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t c0 = ch * kChunk, c1 = std::min(D, c0 + kChunk);
      double acc[kChunk][H] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T* da1r = da1 + r * kHG + g * H;
        for (int64_t c = c0; c < c1; ++c) {
          const double xv = double(x[r * D + c]);
          for (int64_t j = 0; j < H; ++j) acc[c - c0][j] += double(da1r[j]) * xv;
        }
      }
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t j = 0; j < H; ++j) dw1[j * (D + 1) + c] += T(acc[c - c0][j]);
    }
  }
  if (q.fc1_w.defined() || q.fc1_b.defined()) {  // the u column of fc1_w, and fc1_b
    double su[H] = {}, sb[H] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < H; ++j) {
        const double v = double(da1[r * kHG + g * H + j]);
        su[j] += v * double(u[r]);
        sb[j] += v;
      }
    for (int64_t j = 0; j < H; ++j) {
      if (q.fc1_w.defined()) q.fc1_w.ptr<T>()[j * (D + 1) + D] += T(su[j]);
      if (q.fc1_b.defined()) q.fc1_b.ptr<T>()[j] += T(sb[j]);
    }
  }
}

// On the CPU T is f32 or f64, so acc_t<T> == T: u, a1, gradients and scratch share x's dtype.
template <class T>
void backward_cpu(const GateMlpBackwardArgs& a, GateMlpSizes s) {
  static_assert(std::is_same_v<acc_t<T>, T>);
  const int64_t rows = s.rows, D = s.dim;
  const T* x = a.x.ptr<T>();
  const T* a1 = a.a1.ptr<T>();
  T* dx = a.dx.ptr<T>();
  T* da1 = a.scratch.ptr<T>();     // [rows, 48]
  T* a2 = da1 + rows * kHG;        // [rows, 48]
  const T *w1[kNumGates], *w2[kNumGates], *b2[kNumGates];
  const T* dy[kNumGates];
  T* da3[kNumGates];
  for (int g = 0; g < kNumGates; ++g) {
    w1[g] = a.gate[g].fc1_w.ptr<T>();
    w2[g] = a.gate[g].fc2_w.ptr<T>();
    b2[g] = a.gate[g].fc2_b.ptr<T>();
    dy[g] = a.dy[g].ptr<T>();
    da3[g] = a.da3[g].ptr<T>();
  }
#pragma omp parallel for schedule(static) if (rows * D > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    T* a2r = a2 + r * kHG;
    for (int64_t k = 0; k < kHG; ++k) a2r[k] = gelu_erf<T>(a1[r * kHG + k]);
    T da2[kHG] = {};
    for (int64_t d = 0; d < D; ++d) {
      const int64_t i = r * D + d;
      const T xv = x[i];
      T dxd = 0;
      for (int g = 0; g < kNumGates; ++g) {
        const T a3 = gate_fc2_row<T>(w2[g] + d * H, b2[g][d], a2r + g * H);
        T direct, d3;
        gate_elem_grad<T>(a3, xv, dy[g][i], &direct, &d3);  // dy read before da3 (may alias) is written
        da3[g][i] = d3;
        dxd += direct;
        for (int64_t j = 0; j < H; ++j) da2[g * H + j] += d3 * w2[g][d * H + j];
      }
      dx[i] = a.accumulate_dx ? dx[i] + dxd : dxd;
    }
    T* da1r = da1 + r * kHG;
    for (int64_t k = 0; k < kHG; ++k) da1r[k] = da2[k] * gelu_erf_grad<T>(a1[r * kHG + k]);
    // dx += Σ_g da1_g·A1_g[:, :D] (the u column is dropped: u gets no gradient).
    for (int64_t d = 0; d < D; ++d) {
      T acc = 0;
      for (int g = 0; g < kNumGates; ++g)
        for (int64_t j = 0; j < H; ++j) acc += da1r[g * H + j] * w1[g][j * (D + 1) + d];
      dx[r * D + d] += acc;
    }
  }
  for (int g = 0; g < kNumGates; ++g) param_grads_cpu<T>(a, s, g, a2, da1);
}

}  // namespace

void gate_mlp_forward(Ctx& ctx, const GateMlpArgs& a) {
  NVTX_RANGE(ctx, "gate_mlp_forward");
  const char* op = "gate_mlp_forward";
  const GateMlpSizes s = sizes_of(op, a.x);
  const DType dt = a.x.dtype, acc = acc_dtype(dt);
  check_rows(op, a.u, "u", s.rows, 1, acc);
  check_a1(op, a.a1, s.rows, acc);
  if (a.adj_norm.defined()) check_rows(op, a.adj_norm, "adj_norm", s.rows, kNumGates, acc);
  for (int g = 0; g < kNumGates; ++g) {
    check_params(op, a.gate[g], g, s.dim, dt);
    check_rows(op, a.y[g], "y", s.rows, s.dim, dt);
    CHECK(!overlaps(a.y[g], a.x), op, ": y of gate ", kGateNames[g],
          " overlaps x; every gate reads x, so the outputs need their own storage");
  }
  check_device(ctx.device, {&a.x, &a.u, &a.a1, &a.adj_norm, &a.y[0], &a.y[1], &a.y[2]});
  for (const GateParams& p : a.gate) check_device(ctx.device, {&p.fc1_w, &p.fc1_b, &p.fc2_w, &p.fc2_b});
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::gate_mlp_forward(ctx, a, s));
  dispatch_cpu_float(dt, op, [&](auto tag) { forward_cpu<decltype(tag)>(a, s); });
}

void gate_mlp_backward(Ctx& ctx, const GateMlpBackwardArgs& a) {
  NVTX_RANGE(ctx, "gate_mlp_backward");
  const char* op = "gate_mlp_backward";
  const GateMlpSizes s = sizes_of(op, a.x);
  const DType dt = a.x.dtype, acc = acc_dtype(dt);
  check_rows(op, a.u, "u", s.rows, 1, acc);
  check_a1(op, a.a1, s.rows, acc);
  check_rows(op, a.dx, "dx", s.rows, s.dim, dt);
  check_rows(op, a.scratch, "scratch", s.rows, kGateScratchCols, acc);
  CHECK(!overlaps(a.dx, a.x), op, ": dx overlaps x (x is read after dx is first written)");
  for (int g = 0; g < kNumGates; ++g) {
    check_params(op, a.gate[g], g, s.dim, dt);
    check_grads(op, a.grad[g], s.dim, acc);
    check_rows(op, a.dy[g], "dy", s.rows, s.dim, dt);
    check_rows(op, a.da3[g], "da3", s.rows, s.dim, dt);
    CHECK(a.da3[g].data == a.dy[g].data || !overlaps(a.da3[g], a.dy[g]), op, ": da3 of gate ",
          kGateNames[g], " partly overlaps its dy; it may be dy itself or separate storage");
    for (const Tensor* t : {&a.x, &a.dx, &a.scratch})
      CHECK(!overlaps(a.da3[g], *t), op, ": da3 of gate ", kGateNames[g], " overlaps '", t->name,
            "'; it may only share storage with its own dy");
    for (int h = 0; h < kNumGates; ++h)
      CHECK(h == g || (!overlaps(a.da3[g], a.dy[h]) && !overlaps(a.da3[g], a.da3[h])), op,
            ": da3 of gate ", kGateNames[g], " overlaps another gate's dy or da3");
  }
  check_device(ctx.device, {&a.x, &a.u, &a.a1, &a.dx, &a.scratch});
  for (int g = 0; g < kNumGates; ++g) {
    const GateParams& p = a.gate[g];
    const GateGrads& q = a.grad[g];
    check_device(ctx.device, {&p.fc1_w, &p.fc1_b, &p.fc2_w, &p.fc2_b, &q.fc1_w, &q.fc1_b, &q.fc2_w,
                              &q.fc2_b, &a.dy[g], &a.da3[g]});
  }
  if (s.rows == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::gate_mlp_backward(ctx, a, s));
  dispatch_cpu_float(dt, op, [&](auto tag) { backward_cpu<decltype(tag)>(a, s); });
}

}  // namespace attnlab
