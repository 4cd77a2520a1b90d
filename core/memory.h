#pragma once
#include <cstddef>
#include <vector>

#include "core/ctx.h"

namespace attnlab {

// Raw allocations (arenas and tests use these; the training step never does).
void* device_alloc(Device dev, size_t bytes);
void device_free(Device dev, void* p);

// Copies src into dst (same dtype and element count; any pair of devices). Synchronous.
void copy_tensor(const Ctx& ctx, const Tensor& dst, const Tensor& src);
// The same, enqueued on ctx's stream without waiting (the host sees dst only after a later
// synchronising call, e.g. to_host_f64). On the CPU it copies at once.
void copy_tensor_async(const Ctx& ctx, const Tensor& dst, const Tensor& src);
// Sets every byte of t to zero / to 0xFF (NaN for every float dtype: poison for tests).
void zero_tensor(const Ctx& ctx, const Tensor& t);
void poison_tensor(const Ctx& ctx, const Tensor& t);

// Reads any float tensor (any device) into host doubles / writes host doubles into it,
// converting through its dtype (bf16 rounds to nearest even).
std::vector<double> to_host_f64(const Ctx& ctx, const Tensor& t);
void from_host_f64(const Ctx& ctx, const Tensor& t, const std::vector<double>& v);

// An owning buffer holding one tensor, for tests, tools and one-off setup. Not for the step.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device dev, DType t, std::initializer_list<int64_t> dims, const char* name = "");
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  const Tensor& t() const { return t_; }
  operator const Tensor&() const { return t_; }

 private:
  Tensor t_;
};

}  // namespace attnlab
