#pragma once
// Activation memory, planned once per (B, T) and carved from one arena.
//
// Layers describe their tensors in a plan(...) method that the model runs twice with the same
// calls: a sizing pass (the planner hands back undefined tensors and adds up bytes), then a
// carving pass (it hands back real tensors, which the layer keeps). Two kinds of slot:
//  - saved(...):   kept from a layer's forward to its backward; one per call, never shared;
//  - scratch(key): transient within ONE layer's forward or ONE layer's backward. Every request with
//                  the same key gets the same storage (sized to the largest request), so the blocks
//                  of a model share one set of gradient buffers. A layer must never expect a
//                  scratch tensor to hold its contents across another layer's work.
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <map>
#include <string>

#include "core/arena.h"

namespace attnlab {

class ActivationPlanner {
 public:
  explicit ActivationPlanner(Device dev) : dev_(dev) {}

  // Starts the sizing pass (forgets any earlier plan, including the arena).
  void begin_sizing();
  // Ends the sizing pass, allocates the arena and starts the carving pass.
  void begin_carving();
  // Checks that the carving pass asked for exactly what the sizing pass did.
  void finish();
  bool carving() const { return carving_; }

  Tensor saved(DType dt, std::initializer_list<int64_t> dims, const std::string& name);
  // dt/dims may differ between requests of one key (the storage holds the largest).
  Tensor scratch(const std::string& key, DType dt, std::initializer_list<int64_t> dims);
  // Scratch of `bytes` bytes seen as i32 [ceil(bytes/4)] (workspaces of any type); 0 → undefined.
  Tensor scratch_bytes(const std::string& key, size_t bytes);

  size_t saved_bytes() const { return saved_bytes_; }
  size_t scratch_bytes_total() const;
  size_t capacity() const { return arena_.capacity(); }

 private:
  const char* keep(const std::string& s);
  Tensor shaped(void* data, DType dt, std::initializer_list<int64_t> dims, const std::string& name);

  Device dev_;
  bool carving_ = false;
  size_t saved_bytes_ = 0, carved_saved_bytes_ = 0;
  struct Region {
    size_t bytes = 0;
    void* data = nullptr;
  };
  std::map<std::string, Region> scratch_;
  std::deque<std::string> names_;  // stable storage for tensor names (Tensor::name is a char*)
  Arena arena_;
};

}  // namespace attnlab
