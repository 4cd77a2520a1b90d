#include "core/ops/score_controller.h"
#include "core/ops/score_controller_math.h"
#include <algorithm>

#include "cuda/common.cuh"

namespace attnlab::cuda {

namespace {

// One thread per (b, t, h) element of z; the [B, H, T] side is read or written transposed (H is a
// handful of heads, T the long axis: the out index strides by T, a cost the tiny tensor does not feel).
template <class T>
__global__ void controller_forward_kernel(acc_t<T>* out, const T* z, int64_t B, int64_t T_, int64_t H, bool mul) {
  const int64_t n = B * T_ * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t h = i % H, t = (i / H) % T_, b = i / (H * T_);
    out[(b * H + h) * T_ + t] = controller_value<float>(to_f(z[i]), mul);
  }
}

template <class T>
__global__ void controller_backward_kernel(T* dz, const T* z, const acc_t<T>* dout, int64_t B, int64_t T_, int64_t H,
                                           bool mul) {
  const int64_t n = B * T_ * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t h = i % H, t = (i / H) % T_, b = i / (H * T_);
    dz[i] = from_f<T>(controller_grad<float>(to_f(z[i]), float(dout[(b * H + h) * T_ + t]), mul));
  }
}

int64_t blocks_for(int64_t n) { return std::max<int64_t>(1, std::min<int64_t>(ceil_div(n, 256), 4096)); }

}  // namespace

void score_controller_forward(Ctx& ctx, const ScoreControllerArgs& a) {
  const int64_t B = a.z.dim(0), T = a.z.dim(1), H = a.z.dim(2);
  if (B * T * H == 0) return;
  dispatch_cuda_float(a.z.dtype, "score_controller_forward", [&](auto tag) {
    using F = decltype(tag);
    controller_forward_kernel<F><<<blocks_for(B * T * H), 256, 0, stream_of(ctx)>>>(
        dptr<acc_t<F>>(a.out), dptr<F>(a.z), B, T, H, a.kind == ControllerKind::multiplicative);
    CUDA_CHECK_LAUNCH();
  });
}

void score_controller_backward(Ctx& ctx, const ScoreControllerBackwardArgs& a) {
  const int64_t B = a.z.dim(0), T = a.z.dim(1), H = a.z.dim(2);
  if (B * T * H == 0) return;
  dispatch_cuda_float(a.z.dtype, "score_controller_backward", [&](auto tag) {
    using F = decltype(tag);
    controller_backward_kernel<F><<<blocks_for(B * T * H), 256, 0, stream_of(ctx)>>>(
        dptr<F>(a.dz), dptr<F>(a.z), dptr<acc_t<F>>(a.dout), B, T, H, a.kind == ControllerKind::multiplicative);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace attnlab::cuda
