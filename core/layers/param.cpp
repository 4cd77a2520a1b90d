#include "core/layers/param.h"

#include <fnmatch.h>

#include <algorithm>

#include "core/memory.h"

namespace attnlab {

const char* param_init_name(const ParamInit& init) {
  switch (init.kind) {
    case ParamInit::Kind::model_default: return "the architecture's rule";
    case ParamInit::Kind::zeros: return "zeros";
    case ParamInit::Kind::ones: return "ones";
    case ParamInit::Kind::normal: return "normal";
    case ParamInit::Kind::uniform: return "uniform";
    case ParamInit::Kind::identity: return "identity";
    case ParamInit::Kind::copy: return "copy";
  }
  return "?";
}


int64_t Param::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Param::stored_numel() const {
  int64_t n = 1;
  for (int64_t d : stored_shape()) n *= d;
  return n;
}

std::vector<int64_t> Param::stored_shape() const {
  std::vector<int64_t> s = shape;
  s[0] -= pad_rows;
  if (stored_transposed) std::reverse(s.begin(), s.end());
  return s;
}

Tensor Param::unpadded(const Tensor& t) const {
  if (!t.defined() || pad_rows == 0) return t;
  CHECK(t.ndim >= 1 && t.dim(0) == shape[0], "parameter '", name, "': tensor '", t.name, "' ", t.shape_str(),
        " does not have the parameter's ", shape[0], " rows");
  return t.slice0(0, shape[0] - pad_rows);
}

Tensor make_tensor_view(void* data, DType dt, Device dev, const std::vector<int64_t>& dims, const char* name) {
  CHECK(!dims.empty() && dims.size() <= size_t(Tensor::kMaxDims), "tensor '", name, "' has ", dims.size(),
        " dims; 1 to ", Tensor::kMaxDims, " are supported");
  Tensor t;
  t.data = data;
  t.dtype = dt;
  t.device = dev;
  t.name = name;
  t.ndim = int(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    CHECK(dims[i] >= 0, "tensor '", name, "' has a negative dimension");
    t.shape[i] = dims[i];
  }
  return t;
}

bool name_matches(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

Param& ParamStore::add(const std::string& name, std::vector<int64_t> shape, bool stored_transposed) {
  CHECK(!allocated_, "parameter '", name, "' registered after the parameters were laid out");
  CHECK(!name.empty(), "a parameter needs a name");
  CHECK(find(name) == nullptr, "parameter '", name, "' registered twice");
  CHECK(!shape.empty() && shape.size() <= size_t(Tensor::kMaxDims), "parameter '", name, "' has ", shape.size(),
        " dims");
  for (int64_t d : shape) CHECK(d > 0, "parameter '", name, "' has a non-positive dimension");
  CHECK(!stored_transposed || shape.size() == 2, "parameter '", name, "': only matrices are stored transposed");
  Param& p = params_.emplace_back();
  p.name = name;
  p.shape = std::move(shape);
  p.decay = p.shape.size() >= 2;
  p.stored_transposed = stored_transposed;
  return p;
}

void ParamStore::allocate(Device dev, DType dt) {
  CHECK(!allocated_, "the parameters are already laid out");
  for (const Param& p : params_)
    CHECK(p.pad_rows >= 0 && p.pad_rows < p.shape[0] && (p.pad_rows == 0 || !p.stored_transposed),
          "parameter '", p.name, "': ", p.pad_rows, " padding rows of ", p.shape[0],
          " (need 0 ≤ pad_rows < rows, and no padding on a transposed weight)");
  device_ = dev;
  dtype_ = dt;
  size_t bytes = 0;
  for (const Param& p : params_) bytes += Arena::aligned(size_t(p.numel()) * dtype_size(dt));
  values_ = Arena(dev, std::max<size_t>(bytes, Arena::kAlign));
  for (Param& p : params_) {
    void* data = values_.alloc_bytes(size_t(p.numel()) * dtype_size(dt), p.name.c_str());
    p.value = make_tensor_view(data, dt, dev, p.shape, p.name.c_str());
  }
  allocated_ = true;
}

void ParamStore::allocate_grads(const Ctx& ctx) {
  CHECK(allocated_, "allocate_grads before the parameters were laid out");
  const DType gt = grad_dtype();
  size_t bytes = 0;
  for (const Param& p : params_)
    if (p.trainable) bytes += Arena::aligned(size_t(p.numel()) * dtype_size(gt));
  const size_t unit = size_t(grad_multiple_) * dtype_size(gt);
  bytes = std::max<size_t>(bytes, Arena::kAlign);
  bytes = (bytes + unit - 1) / unit * unit;
  grads_ = Arena(device_, bytes);
  grads_base_ = grads_.alloc_bytes(0, "gradient arena base");  // a zero-byte carve returns the base
  for (Param& p : params_) {
    p.grad = Tensor();
    if (!p.trainable) continue;
    void* data = grads_.alloc_bytes(size_t(p.numel()) * dtype_size(gt), p.name.c_str());
    p.grad = make_tensor_view(data, gt, device_, p.shape, p.name.c_str());
  }
  grads_allocated_ = true;
  zero_grads(ctx);
}

void ParamStore::zero_grads(const Ctx& ctx) {
  if (!grads_allocated_ || grads_.used() == 0) return;
  // The capacity is a multiple of 4 bytes (256-byte alignment, or the element multiple of a
  // 4- or 8-byte dtype): one i32 view covers the gradients, the gaps and the padding.
  zero_tensor(ctx, make_tensor_view(grads_base_, DType::i32, device_, {int64_t(grads_.capacity() / 4)},
                                    "parameter gradients"));
}

Tensor ParamStore::grad_arena() const {
  CHECK(grads_allocated_, "grad_arena before allocate_grads");
  return make_tensor_view(grads_base_, grad_dtype(), device_, {grad_arena_numel()}, "gradient arena");
}

int64_t ParamStore::grad_arena_numel() const {
  return grads_allocated_ ? int64_t(grads_.capacity() / dtype_size(grad_dtype())) : 0;
}

int64_t ParamStore::grad_offset(const Param& p) const {
  CHECK(grads_allocated_ && p.grad.defined(), "grad_offset: '", p.name, "' has no gradient (frozen?)");
  return int64_t((static_cast<const char*>(p.grad.data) - static_cast<const char*>(grads_base_)) /
                 ptrdiff_t(dtype_size(grad_dtype())));
}

void ParamStore::set_grad_arena_multiple(const Ctx& ctx, int64_t elements) {
  CHECK(elements >= 1, "set_grad_arena_multiple: ", elements, " elements");
  grad_multiple_ = elements;
  if (grads_allocated_) allocate_grads(ctx);
}

void ParamStore::zero_padding(const Ctx& ctx) {
  for (Param& p : params_)
    if (p.pad_rows > 0 && p.value.defined()) zero_tensor(ctx, p.value.slice0(p.shape[0] - p.pad_rows, p.shape[0]));
}

void ParamStore::set_trainable(const Ctx& ctx, const std::vector<std::string>& patterns) {
  std::vector<std::string> unmatched;
  for (const std::string& pat : patterns) {
    bool any = false;
    for (const Param& p : params_) any = any || name_matches(pat, p.name);
    if (!any) unmatched.push_back("'" + pat + "'");
  }
  if (!unmatched.empty()) {
    std::string list;
    for (const auto& u : unmatched) list += (list.empty() ? "" : ", ") + u;
    FAIL_WITH("trainable parameters: pattern(s) ", list, " match no parameter name; names look like ",
              some_names(), " (patterns are fnmatch globs over the HF names, e.g. '*.k_proj.*')");
  }
  for (Param& p : params_) {
    p.trainable = false;
    for (const std::string& pat : patterns) p.trainable = p.trainable || name_matches(pat, p.name);
  }
  if (grads_allocated_) allocate_grads(ctx);
}

void ParamStore::set_all_trainable(const Ctx& ctx) {
  for (Param& p : params_) p.trainable = true;
  if (grads_allocated_) allocate_grads(ctx);
}

Param* ParamStore::find(const std::string& name) {
  for (Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}
const Param* ParamStore::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

Param& ParamStore::at(const std::string& name) {
  Param* p = find(name);
  if (!p) FAIL_WITH("no parameter named '", name, "'; names look like ", some_names());
  return *p;
}

int64_t ParamStore::total_numel() const {
  int64_t n = 0;
  for (const Param& p : params_) n += p.stored_numel();
  return n;
}
int64_t ParamStore::trainable_numel() const {
  int64_t n = 0;
  for (const Param& p : params_)
    if (p.trainable) n += p.stored_numel();
  return n;
}

std::string ParamStore::some_names() const {
  std::string s;
  size_t shown = 0;
  for (const Param& p : params_) {
    if (shown == 4) break;
    s += (shown ? ", " : "") + p.name;
    ++shown;
  }
  if (params_.size() > shown) s += ", ... (" + std::to_string(params_.size()) + " in all)";
  return s.empty() ? "(none registered)" : s;
}

}  // namespace attnlab
