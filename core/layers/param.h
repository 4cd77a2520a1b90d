#pragma once
// Named parameters and the store that lays them out.
//
// A Param is one HF-named tensor (`model.layers.3.self_attn.k_proj.weight`) in the runtime layout:
// its value in the model's dtype and, when it is trainable, a gradient in the accumulation dtype
// (f32 for f32/bf16, f64 for f64). A frozen parameter has NO gradient tensor (grad undefined), and
// every layer's backward passes that undefined tensor to its op, which then skips the weight-
// gradient GEMM: that is how KV-only fine-tuning costs less than full fine-tuning.
//
// The ParamStore registers parameters (name, shape) while the model is built, then carves every
// value out of one arena and every gradient out of another, each sized exactly (Arena::aligned per
// tensor). Layers hold Param pointers (stable: the store never moves a Param) and read value/grad
// at call time, so re-carving the gradients after a change of the trainable set is seen at once.
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/ctx.h"

namespace attnlab {

// How a parameter starts, declared by the module that registers it. model_default: the
// architecture's rule (core/models/weights.h: matrices N(0, σ²), norm weights 1, biases 0).
// identity: a 2-D [rows, cols] matrix with 1 at (i, i mod block) and 0 elsewhere (block = cols when
// 0): I, its first rows, or one identity per row block of `block` rows (the backward head's per-head
// query projection). copy: the value of the parameter named `source` (same shape), e.g. an untied
// lm_head starting as a copy of the tied embedding.
struct ParamInit {
  enum class Kind : uint8_t { model_default, zeros, ones, normal, uniform, identity, copy };
  Kind kind = Kind::model_default;
  double stddev = 0;  // normal: the standard deviation; uniform: the bound b of U(−b, b)
  // Added by a variant, a controller or a head to an architecture whose pretrained checkpoints do
  // not have it: loading such a checkpoint initialises it by this rule and lists it in the log,
  // while a missing pretrained tensor stays an error.
  bool added = false;
  static ParamInit zeros_added() { return {Kind::zeros, 0, true}; }
  static ParamInit ones_added() { return {Kind::ones, 0, true}; }
  static ParamInit normal_added(double s) { return {Kind::normal, s, true}; }
  // PyTorch nn.Linear's default: U(−1/√fan_in, 1/√fan_in) for the weight and the bias.
  static ParamInit uniform_added(double bound) { return {Kind::uniform, bound, true}; }
  int64_t block = 0;   // identity only: the identity repeats every `block` rows (0: cols)
  std::string source;  // copy only: the parameter whose value this one starts as
  static ParamInit identity_added(int64_t block = 0) {
    ParamInit i{Kind::identity, 0, true};
    i.block = block;
    return i;
  }
  static ParamInit copy_added(const std::string& source) {
    ParamInit i{Kind::copy, 0, true};
    i.source = source;
    return i;
  }
};
const char* param_init_name(const ParamInit& init);

struct Param {
  std::string name;            // the HF name; tensors' names point into it
  std::vector<int64_t> shape;  // runtime layout (Linear weights [out, in])
  Tensor value;                // model dtype, on the model's device
  Tensor grad;                 // acc dtype; undefined when frozen (or before allocate_grads)
  bool trainable = true;
  bool decay = true;           // weight decay applies (matrices yes; biases and norm weights no)
  // GPT-2's Conv1D stores its 2-D weight [in, out] in checkpoints; the runtime keeps [out, in].
  // Only the checkpoint reader and writer look at this.
  bool stored_transposed = false;
  // Trailing rows of a [rows, C] table that exist only to pad the row count (the vocabulary padded
  // to a multiple of 64, core/models/model.h): they hold zeros, get zero gradients, and are not in
  // checkpoints. shape counts them; stored_shape() does not.
  int64_t pad_rows = 0;
  ParamInit init;              // how it starts (and whether pretrained checkpoints may lack it)

  int64_t numel() const;          // elements in memory, padding rows included
  int64_t stored_numel() const;   // elements in checkpoints (padding rows excluded)
  // The checkpoint shape: padding rows dropped, then reversed when stored_transposed.
  std::vector<int64_t> stored_shape() const;
  // `t` (this parameter's value or gradient, or a tensor of its shape) without the padding rows:
  // the leading rows, a contiguous view. Undefined stays undefined.
  Tensor unpadded(const Tensor& t) const;
};

class ParamStore {
 public:
  ParamStore() = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // Registers a parameter; names are unique. Must come before allocate(). `decay` defaults to
  // "is a matrix" (HF Trainer's convention excludes biases and norm weights).
  Param& add(const std::string& name, std::vector<int64_t> shape, bool stored_transposed = false);

  // Carves every value (dtype `dt` on `dev`) from one arena; called once.
  void allocate(Device dev, DType dt);
  // (Re)carves the gradients of the trainable parameters from a fresh arena (acc dtype), zeroed.
  void allocate_grads(const Ctx& ctx);
  bool allocated() const { return allocated_; }
  bool grads_allocated() const { return grads_allocated_; }

  // Sets the trainable set: a parameter is trainable iff its name matches one of the fnmatch-style
  // patterns (`*.k_proj.*`, `model.layers.1?.*`; `*` also crosses dots). Every pattern must match
  // at least one name (a typo is an error listing a few names). Re-carves the gradients when they
  // were allocated: frozen parameters then hold no gradient memory.
  void set_trainable(const Ctx& ctx, const std::vector<std::string>& patterns);
  void set_all_trainable(const Ctx& ctx);

  // Sets every gradient to zero (one memset over the whole gradient arena, padding included).
  void zero_grads(const Ctx& ctx);
  // Sets the padding rows (Param::pad_rows) of every value to zero. The model does it once laid
  // out, and weight initialisation and loading do it again; anything else that writes whole
  // values (tests' random parameters) must too.
  void zero_padding(const Ctx& ctx);

  // The gradient arena as one flat tensor [grad_arena_numel()] (acc dtype): every trainable
  // gradient at grad_offset(p), the alignment gaps and the tail zero after zero_grads. This is
  // what the data-parallel trainer reduces in buckets and shards for ZeRO-1.
  Tensor grad_arena() const;
  int64_t grad_arena_numel() const;
  // Elements from the arena's start to p's gradient (p must be trainable).
  int64_t grad_offset(const Param& p) const;
  // Rounds the arena up to a multiple of `elements` (equal shards for every rank); re-carves the
  // gradients when they exist. 1 (the default) adds nothing beyond the per-tensor alignment.
  void set_grad_arena_multiple(const Ctx& ctx, int64_t elements);

  Param* find(const std::string& name);
  const Param* find(const std::string& name) const;
  // Throws naming the parameter and a few that exist.
  Param& at(const std::string& name);

  size_t size() const { return params_.size(); }
  // Parameter counts as checkpoints (and HF) count them: padding rows excluded.
  int64_t total_numel() const;
  int64_t trainable_numel() const;
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  DType grad_dtype() const { return acc_dtype(dtype_); }

  std::deque<Param>::iterator begin() { return params_.begin(); }
  std::deque<Param>::iterator end() { return params_.end(); }
  std::deque<Param>::const_iterator begin() const { return params_.begin(); }
  std::deque<Param>::const_iterator end() const { return params_.end(); }

 private:
  std::string some_names() const;

  std::deque<Param> params_;  // a deque never moves its elements: Param pointers stay valid
  Arena values_, grads_;
  void* grads_base_ = nullptr;
  int64_t grad_multiple_ = 1;
  Device device_ = Device::cpu;
  DType dtype_ = DType::f32;
  bool allocated_ = false, grads_allocated_ = false;
};

// Called by a model's backward when every gradient of the parameters registered at or after `first`
// is final (after each block, with the block's first parameter): the data-parallel trainer
// launches the gradient buckets that lie above it while the backward goes on (train/grad_sync.h).
using GradReadyHook = std::function<void(const Param& first)>;

// fnmatch(3) without flags: `*` and `?` match any characters, dots included; `[...]` classes.
bool name_matches(const std::string& pattern, const std::string& name);

// A tensor view of `data` with a runtime list of dims (at most Tensor::kMaxDims).
Tensor make_tensor_view(void* data, DType dt, Device dev, const std::vector<int64_t>& dims, const char* name);

}  // namespace attnlab
