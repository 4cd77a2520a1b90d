#pragma once
#include <cstddef>
#include <initializer_list>

#include "core/tensor.h"

namespace attnlab {

// One allocation, carved by a bump pointer. Plans (parameters, gradients, optimizer state,
// activations) are laid out once per shape; the step loop never allocates.
class Arena {
 public:
  static constexpr size_t kAlign = 256;
  Arena() = default;
  Arena(Device dev, size_t capacity_bytes);
  ~Arena();
  Arena(Arena&& o) noexcept;
  Arena& operator=(Arena&& o) noexcept;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Throws attnlab::Error naming the tensor and the sizes when the arena is full.
  Tensor alloc(DType t, std::initializer_list<int64_t> dims, const char* name = "");
  void* alloc_bytes(size_t bytes, const char* name = "");
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  // Frees everything carved after a used() mark (stack discipline: scratch of one sub-layer).
  void rewind(size_t mark) { used_ = mark < used_ ? mark : used_; }
  size_t capacity() const { return capacity_; }
  Device device() const { return dev_; }

  // Rounds up to the arena alignment: planners sum these to size an arena exactly.
  static size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

 private:
  Device dev_ = Device::cpu;
  char* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

}  // namespace attnlab
