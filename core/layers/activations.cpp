#include "core/layers/activations.h"

#include <algorithm>

namespace attnlab {

void ActivationPlanner::begin_sizing() {
  arena_ = Arena();
  scratch_.clear();
  names_.clear();
  saved_bytes_ = carved_saved_bytes_ = 0;
  carving_ = false;
}

size_t ActivationPlanner::scratch_bytes_total() const {
  size_t n = 0;
  for (const auto& [key, r] : scratch_) n += Arena::aligned(r.bytes);
  return n;
}

void ActivationPlanner::begin_carving() {
  CHECK(!carving_, "activation planner: begin_carving called twice");
  arena_ = Arena(dev_, std::max<size_t>(saved_bytes_ + scratch_bytes_total(), Arena::kAlign));
  for (auto& [key, r] : scratch_)
    if (r.bytes > 0) r.data = arena_.alloc_bytes(r.bytes, key.c_str());
  carving_ = true;
}

void ActivationPlanner::finish() {
  CHECK(carving_ && carved_saved_bytes_ == saved_bytes_, "activation planner: the carving pass asked for ",
        carved_saved_bytes_, " saved bytes, the sizing pass for ", saved_bytes_,
        " (a layer's plan() must make the same requests in both passes)");
}

const char* ActivationPlanner::keep(const std::string& s) {
  names_.push_back(s);
  return names_.back().c_str();
}

Tensor ActivationPlanner::shaped(void* data, DType dt, std::initializer_list<int64_t> dims, const std::string& name) {
  return Tensor(data, dt, dev_, dims, keep(name));
}

Tensor ActivationPlanner::saved(DType dt, std::initializer_list<int64_t> dims, const std::string& name) {
  Tensor t = shaped(nullptr, dt, dims, name);
  const size_t bytes = t.bytes();
  if (!carving_) {
    saved_bytes_ += Arena::aligned(bytes);
    return Tensor();
  }
  carved_saved_bytes_ += Arena::aligned(bytes);
  CHECK(carved_saved_bytes_ <= saved_bytes_, "activation planner: '", name,
        "' was not requested in the sizing pass");
  t.data = arena_.alloc_bytes(bytes, t.name);
  return t;
}

Tensor ActivationPlanner::scratch(const std::string& key, DType dt, std::initializer_list<int64_t> dims) {
  Tensor t = shaped(nullptr, dt, dims, key);
  const size_t bytes = t.bytes();
  if (!carving_) {
    Region& r = scratch_[key];
    r.bytes = std::max(r.bytes, bytes);
    return Tensor();
  }
  auto it = scratch_.find(key);
  CHECK(it != scratch_.end() && it->second.bytes >= bytes, "activation planner: scratch '", key, "' of ", bytes,
        " bytes was not requested in the sizing pass");
  t.data = it->second.data;
  return t;
}

Tensor ActivationPlanner::scratch_bytes(const std::string& key, size_t bytes) {
  if (bytes == 0) return Tensor();
  return scratch(key, DType::i32, {int64_t((bytes + 3) / 4)});
}

}  // namespace attnlab
