#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace attnlab {

enum class Device : uint8_t { cpu, cuda };
inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

// A non-owning view: pointer, dtype, up to 4 dims (row-major, contiguous), device, name.
// Storage comes from an Arena (or, in tests, from a buffer the test owns).
struct Tensor {
  static constexpr int kMaxDims = 4;
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{0, 0, 0, 0};
  const char* name = "";

  Tensor() = default;
  Tensor(void* p, DType t, Device dev, std::initializer_list<int64_t> dims, const char* nm = "");

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return ndim == 0 && data == nullptr ? 0 : n;
  }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  bool defined() const { return data != nullptr; }
  bool on_cpu() const { return device == Device::cpu; }

  template <class T>
  T* ptr() const {
    CHECK(dtype_of<T> == dtype, "tensor '", name, "' is ", dtype_name(dtype), ", accessed as ",
          dtype_name(dtype_of<T>));
    return static_cast<T*>(data);
  }
  // Same storage, new shape (element count must match).
  Tensor view(std::initializer_list<int64_t> dims) const;
  // The first elements of the storage with these dims (at most numel()): a scratch buffer sized
  // for its largest use, seen at the size of the current one.
  Tensor prefix(std::initializer_list<int64_t> dims) const;
  // Rows [begin, end) along dim 0.
  Tensor slice0(int64_t begin, int64_t end) const;
  std::string shape_str() const;
};

// Throws unless `t` has exactly these dims (-1 = any).
void check_shape(const Tensor& t, std::initializer_list<int64_t> dims);
// Throws unless every defined tensor lives on `dev`.
void check_device(Device dev, std::initializer_list<const Tensor*> ts);

}  // namespace attnlab
