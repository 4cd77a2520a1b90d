#include "core/arena.h"

#include "core/memory.h"

namespace attnlab {

Arena::Arena(Device dev, size_t capacity_bytes) : dev_(dev), capacity_(capacity_bytes) {
  base_ = static_cast<char*>(device_alloc(dev, capacity_bytes));
}
Arena::~Arena() { device_free(dev_, base_); }
Arena::Arena(Arena&& o) noexcept
    : dev_(o.dev_), base_(o.base_), capacity_(o.capacity_), used_(o.used_) {
  o.base_ = nullptr;
  o.capacity_ = o.used_ = 0;
}
Arena& Arena::operator=(Arena&& o) noexcept {
  if (this != &o) {
    device_free(dev_, base_);
    dev_ = o.dev_;
    base_ = o.base_;
    capacity_ = o.capacity_;
    used_ = o.used_;
    o.base_ = nullptr;
    o.capacity_ = o.used_ = 0;
  }
  return *this;
}

void* Arena::alloc_bytes(size_t bytes, const char* name) {
  size_t need = aligned(bytes);
  CHECK(used_ + need <= capacity_, "arena (", device_name(dev_), ") full: '", name, "' needs ",
        need, " bytes, ", capacity_ - used_, " of ", capacity_,
        " left; the plan under-counted, size the arena with Arena::aligned() per tensor");
  void* p = base_ + used_;
  used_ += need;
  return p;
}

Tensor Arena::alloc(DType t, std::initializer_list<int64_t> dims, const char* name) {
  Tensor x(nullptr, t, dev_, dims, name);
  x.data = alloc_bytes(x.bytes(), name);
  return x;
}

}  // namespace attnlab
