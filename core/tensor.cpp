#include "core/tensor.h"

#include <sstream>

namespace attnlab {

Tensor::Tensor(void* p, DType t, Device dev, std::initializer_list<int64_t> dims, const char* nm)
    : data(p), dtype(t), device(dev), name(nm) {
  CHECK(dims.size() <= size_t(kMaxDims), "tensor '", nm, "' has ", dims.size(), " dims; at most 4");
  ndim = int(dims.size());
  int i = 0;
  for (int64_t d : dims) {
    CHECK(d >= 0, "tensor '", nm, "' has a negative dimension");
    shape[i++] = d;
  }
}

Tensor Tensor::view(std::initializer_list<int64_t> dims) const {
  Tensor v(data, dtype, device, dims, name);
  CHECK(v.numel() == numel(), "view of '", name, "' ", shape_str(), " as ", v.shape_str(),
        " changes the element count");
  return v;
}

Tensor Tensor::prefix(std::initializer_list<int64_t> dims) const {
  Tensor v(data, dtype, device, dims, name);
  CHECK(v.numel() <= numel(), "buffer '", name, "' ", shape_str(), " cannot hold ", v.shape_str());
  return v;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  CHECK(ndim >= 1 && 0 <= begin && begin <= end && end <= shape[0], "slice [", begin, ",", end,
        ") out of range for '", name, "' ", shape_str());
  Tensor v = *this;
  int64_t row = numel() / (shape[0] ? shape[0] : 1);
  v.data = static_cast<char*>(data) + size_t(begin * row) * dtype_size(dtype);
  v.shape[0] = end - begin;
  return v;
}

std::string Tensor::shape_str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < ndim; ++i) os << (i ? "," : "") << shape[i];
  os << "]";
  return os.str();
}

void check_shape(const Tensor& t, std::initializer_list<int64_t> dims) {
  bool ok = t.ndim == int(dims.size());
  int i = 0;
  for (int64_t d : dims) {
    if (ok && d >= 0 && t.shape[i] != d) ok = false;
    ++i;
  }
  if (!ok) {
    std::ostringstream want;
    want << "[";
    i = 0;
    for (int64_t d : dims) want << (i++ ? "," : "") << (d < 0 ? std::string("*") : std::to_string(d));
    want << "]";
    FAIL_WITH("tensor '", t.name, "' has shape ", t.shape_str(), ", expected ", want.str());
  }
}

void check_device(Device dev, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined())
      CHECK(t->device == dev, "tensor '", t->name, "' is on ", device_name(t->device),
            " but the op runs on ", device_name(dev));
}

}  // namespace attnlab
