#include "core/ops/permute.h"

#include <cstring>

#include "core/dispatch.h"
#include "core/nvtx.h"

namespace attnlab {

namespace {

void swap12(Ctx& ctx, const char* op, const Tensor& out, const Tensor& in) {
  CHECK(in.defined() && out.defined(), op, ": tensors not set");
  CHECK(in.ndim == 4, op, ": '", in.name, "' must be 4-D [B, N1, N2, d], got ", in.shape_str());
  const int64_t B = in.dim(0), n1 = in.dim(1), n2 = in.dim(2), d = in.dim(3);
  check_shape(out, {B, n2, n1, d});
  CHECK(out.dtype == in.dtype, op, ": '", out.name, "' is ", dtype_name(out.dtype), ", '", in.name,
        "' is ", dtype_name(in.dtype));
  CHECK(out.data != in.data || in.numel() == 0, op, ": cannot permute in place");
  check_device(ctx.device, {&out, &in});
  if (in.numel() == 0) return;
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::permute_swap12(ctx, out, in));
  dispatch_cpu_float(in.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const T* src = in.ptr<T>();
    T* dst = out.ptr<T>();
#pragma omp parallel for collapse(2) schedule(static) if (in.numel() > 65536)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < n1; ++i)
        for (int64_t j = 0; j < n2; ++j)
          std::memcpy(dst + ((b * n2 + j) * n1 + i) * d, src + ((b * n1 + i) * n2 + j) * d,
                      size_t(d) * sizeof(T));
  });
}

}  // namespace

void permute_forward(Ctx& ctx, const PermuteArgs& a) {
  NVTX_RANGE(ctx, "permute_forward");
  swap12(ctx, "permute_forward", a.out, a.in);
}

void permute_backward(Ctx& ctx, const PermuteBackwardArgs& a) {
  NVTX_RANGE(ctx, "permute_backward");
  swap12(ctx, "permute_backward", a.din, a.dout);
}

}  // namespace attnlab
