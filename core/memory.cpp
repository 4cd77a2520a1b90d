#include "core/memory.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#if ATTNLAB_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace attnlab {

void* device_alloc(Device dev, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (dev == Device::cpu) {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    CHECK(p, "host allocation of ", bytes, " bytes failed");
    return p;
  }
#if ATTNLAB_WITH_CUDA
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
#else
  FAIL_WITH("device allocation requested but attnlab was built without CUDA");
#endif
}

void device_free(Device dev, void* p) {
  if (!p) return;
  if (dev == Device::cpu) {
    std::free(p);
    return;
  }
#if ATTNLAB_WITH_CUDA
  cudaFree(p);
#endif
}

static void copy_bytes(const Ctx& ctx, const Tensor& dst, const Tensor& src, bool wait) {
  CHECK(dst.dtype == src.dtype && dst.numel() == src.numel(), "copy '", src.name, "' ",
        dtype_name(src.dtype), src.shape_str(), " -> '", dst.name, "' ", dtype_name(dst.dtype),
        dst.shape_str(), ": dtype or size differ");
  if (dst.on_cpu() && src.on_cpu()) {
    std::memmove(dst.data, src.data, src.bytes());
    return;
  }
#if ATTNLAB_WITH_CUDA
  auto s = static_cast<cudaStream_t>(ctx.stream);
  CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDefault, s));
  if (wait) CUDA_CHECK(cudaStreamSynchronize(s));
#else
  (void)ctx, (void)wait;
  FAIL_WITH("copy involves a CUDA tensor but attnlab was built without CUDA");
#endif
}

void copy_tensor(const Ctx& ctx, const Tensor& dst, const Tensor& src) { copy_bytes(ctx, dst, src, true); }
void copy_tensor_async(const Ctx& ctx, const Tensor& dst, const Tensor& src) { copy_bytes(ctx, dst, src, false); }

static void fill_bytes(const Ctx& ctx, const Tensor& t, int byte) {
  if (t.on_cpu()) {
    std::memset(t.data, byte, t.bytes());
    return;
  }
#if ATTNLAB_WITH_CUDA
  CUDA_CHECK(cudaMemsetAsync(t.data, byte, t.bytes(), static_cast<cudaStream_t>(ctx.stream)));
#endif
}
void zero_tensor(const Ctx& ctx, const Tensor& t) { fill_bytes(ctx, t, 0); }
void poison_tensor(const Ctx& ctx, const Tensor& t) { fill_bytes(ctx, t, 0xFF); }

// Runs f on a host view of t. Reading copies device data down first; writing (every element is
// overwritten) skips that download, so a fresh device buffer is never read uninitialised.
enum class HostAccess { read, write };
template <class F>
static void with_host_copy(const Ctx& ctx, const Tensor& t, HostAccess access, F f) {
  std::vector<char> host(t.bytes());
  Tensor h = t;
  h.device = Device::cpu;
  h.data = host.data();
  if (t.on_cpu()) h.data = t.data;
  else if (access == HostAccess::read) copy_tensor(ctx, h, t);
  f(h);
  if (access == HostAccess::write && !t.on_cpu()) copy_tensor(ctx, t, h);
}

std::vector<double> to_host_f64(const Ctx& ctx, const Tensor& t) {
  std::vector<double> out(size_t(t.numel()));
  with_host_copy(ctx, t, HostAccess::read, [&](const Tensor& h) {
    for (size_t i = 0; i < out.size(); ++i) {
      switch (h.dtype) {
        case DType::f32: out[i] = static_cast<const float*>(h.data)[i]; break;
        case DType::f64: out[i] = static_cast<const double*>(h.data)[i]; break;
        case DType::bf16: out[i] = bf16_to_float(static_cast<const bf16*>(h.data)[i]); break;
        case DType::f16: out[i] = f16_to_float(static_cast<const f16*>(h.data)[i]); break;
        case DType::i32: out[i] = static_cast<const int32_t*>(h.data)[i]; break;
        case DType::u32: out[i] = static_cast<const uint32_t*>(h.data)[i]; break;
      }
    }
  });
  return out;
}

void from_host_f64(const Ctx& ctx, const Tensor& t, const std::vector<double>& v) {
  CHECK(int64_t(v.size()) == t.numel(), "writing ", v.size(), " values into '", t.name, "' of ",
        t.numel(), " elements");
  with_host_copy(ctx, t, HostAccess::write, [&](const Tensor& h) {
    for (size_t i = 0; i < v.size(); ++i) {
      switch (h.dtype) {
        case DType::f32: static_cast<float*>(h.data)[i] = float(v[i]); break;
        case DType::f64: static_cast<double*>(h.data)[i] = v[i]; break;
        case DType::bf16: static_cast<bf16*>(h.data)[i] = float_to_bf16(float(v[i])); break;
        case DType::f16: static_cast<f16*>(h.data)[i] = float_to_f16(float(v[i])); break;
        case DType::i32: static_cast<int32_t*>(h.data)[i] = int32_t(v[i]); break;
        case DType::u32: static_cast<uint32_t*>(h.data)[i] = uint32_t(v[i]); break;
      }
    }
  });
}

Buffer::Buffer(Device dev, DType t, std::initializer_list<int64_t> dims, const char* name) {
  t_ = Tensor(nullptr, t, dev, dims, name);
  t_.data = device_alloc(dev, t_.bytes());
}
Buffer::~Buffer() { device_free(t_.device, t_.data); }
Buffer::Buffer(Buffer&& o) noexcept : t_(o.t_) { o.t_.data = nullptr; }
Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    device_free(t_.device, t_.data);
    t_ = o.t_;
    o.t_.data = nullptr;
  }
  return *this;
}

}  // namespace attnlab
