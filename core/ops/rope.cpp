#include "core/ops/rope.h"

#include <cmath>
#include <vector>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/rope_math.h"

namespace attnlab {

const char* rope_layout_name(RopeLayout l) {
  return l == RopeLayout::rotate_half ? "rotate_half" : "interleaved";
}

namespace {

// The kernel passes inv_freq by value in a fixed table of 128 floats: rot/2 <= 128.
constexpr int64_t kMaxHeadDim = 256;

// Validates one direction. `tokens_major` is the [B, T, H, d] tensor (x or dx), `rotated` the
// one in the spec's layout (out or dout); `out`/`in` say which is written.
RopePlan make_plan(const char* op, const Tensor& tokens_major, const Tensor& rotated,
                   const RopeSpec& s, bool backward) {
  CHECK(tokens_major.defined() && rotated.defined(), op, ": tensors not set");
  CHECK(tokens_major.ndim == 4, op, ": '", tokens_major.name, "' must be [B, T, H, d], got ",
        tokens_major.shape_str());
  RopePlan p;
  p.B = tokens_major.dim(0);
  p.T = tokens_major.dim(1);
  p.H = tokens_major.dim(2);
  p.d = tokens_major.dim(3);
  CHECK(p.d % 2 == 0 && p.d >= 2 && p.d <= kMaxHeadDim, op, ": head dim d must be even and in [2, ",
        kMaxHeadDim, "], got ", p.d);
  p.rot = s.rotary_dim == 0 ? p.d : s.rotary_dim;
  CHECK(p.rot > 0 && p.rot % 2 == 0 && p.rot <= p.d, op,
        ": rotary_dim must be even and in [2, d] (0 = d); got ", s.rotary_dim, " with d = ", p.d);
  CHECK(std::isfinite(s.theta) && s.theta > 0, op, ": theta must be a positive base, got ", s.theta);
  if (s.heads_first) check_shape(rotated, {p.B, p.H, p.T, p.d});
  else check_shape(rotated, {p.B, p.T, p.H, p.d});
  CHECK(rotated.dtype == tokens_major.dtype, op, ": '", rotated.name, "' is ",
        dtype_name(rotated.dtype), ", '", tokens_major.name, "' is ", dtype_name(tokens_major.dtype));
  CHECK(!s.heads_first || rotated.data != tokens_major.data, op,
        ": in place needs the same layout on both sides (heads_first permutes)");
  if (s.positions.defined()) {
    CHECK(s.positions.dtype == DType::i32, op, ": positions must be i32, got ",
          dtype_name(s.positions.dtype));
    check_shape(s.positions, {p.B, p.T});
    p.positions = static_cast<const int32_t*>(s.positions.data);
  }
  p.pos_offset = s.pos_offset;
  p.theta = s.theta;
  p.interleaved = s.layout == RopeLayout::interleaved;
  p.inverse = backward;
  if (backward) {
    p.in = rotated;
    p.out = tokens_major;
    p.in_heads_first = s.heads_first;
  } else {
    p.in = tokens_major;
    p.out = rotated;
    p.out_heads_first = s.heads_first;
  }
  return p;
}

// Offset of row (b, t, h) in a [B, T, H, d] or [B, H, T, d] tensor, in elements.
int64_t row_offset(const RopePlan& p, int64_t b, int64_t t, int64_t h, bool heads_first) {
  return (heads_first ? (b * p.H + h) * p.T + t : (b * p.T + t) * p.H + h) * p.d;
}

template <class T>
void rope_apply_cpu(const RopePlan& p) {
  using A = T;  // the CPU runs f32 in float (as the GPU) and f64 in double
  const int64_t half = p.rot / 2;
  std::vector<A> inv_freq(static_cast<size_t>(half));
  rope_inv_freq<A>(p.theta, p.rot, inv_freq.data());
  const T* in = p.in.ptr<T>();
  T* out = p.out.ptr<T>();
  const bool same_storage = static_cast<const void*>(in) == static_cast<void*>(out);
  const int64_t tokens = p.B * p.T;
#pragma omp parallel for schedule(static) if (tokens * p.H * p.d > 65536)
  for (int64_t token = 0; token < tokens; ++token) {
    const int64_t b = token / p.T, t = token % p.T;
    const int64_t pos = p.positions ? int64_t(p.positions[token]) : p.pos_offset + t;
    A cos_v[kMaxHeadDim / 2], sin_v[kMaxHeadDim / 2];
    for (int64_t i = 0; i < half; ++i) rope_cos_sin<A>(pos, inv_freq[size_t(i)], p.inverse, &cos_v[i], &sin_v[i]);
    for (int64_t h = 0; h < p.H; ++h) {
      const T* x = in + row_offset(p, b, t, h, p.in_heads_first);
      T* y = out + row_offset(p, b, t, h, p.out_heads_first);
      for (int64_t i = 0; i < half; ++i) {
        const int64_t i1 = p.interleaved ? 2 * i : i, i2 = p.interleaved ? 2 * i + 1 : i + half;
        A y1, y2;
        rope_rotate<A>(x[i1], x[i2], cos_v[i], sin_v[i], &y1, &y2);
        y[i1] = y1;
        y[i2] = y2;
      }
      if (!same_storage)
        for (int64_t c = p.rot; c < p.d; ++c) y[c] = x[c];
    }
  }
}

void run(Ctx& ctx, const RopePlan& p, const Tensor& positions) {
  check_device(ctx.device, {&p.out, &p.in, &positions});
  if (p.out.numel() == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::rope_apply(ctx, p));
  dispatch_cpu_float(p.out.dtype, p.inverse ? "rope_backward" : "rope_forward", [&](auto tag) {
    rope_apply_cpu<decltype(tag)>(p);
  });
}

}  // namespace

void rope_forward(Ctx& ctx, const RopeArgs& a) {
  NVTX_RANGE(ctx, "rope_forward");
  run(ctx, make_plan("rope_forward", a.x, a.out, a.spec, false), a.spec.positions);
}

void rope_backward(Ctx& ctx, const RopeBackwardArgs& a) {
  NVTX_RANGE(ctx, "rope_backward");
  run(ctx, make_plan("rope_backward", a.dx, a.dout, a.spec, true), a.spec.positions);
}

}  // namespace attnlab
