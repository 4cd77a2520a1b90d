#pragma once
// A list of parameter tensors for the multi-tensor launches (global gradient norm, AdamW).
//
// A model has hundreds of small tensors (biases, norms); a launch per tensor would spend more
// time launching than moving bytes. The table concatenates the tensors' elements into one
// space of fixed-size chunks: slot i owns chunks [chunk_begin_i, chunk_begin_i + ceil(n_i /
// kParamChunk)), and a block handling chunk c finds its slot by binary search over chunk_begin.
// On CUDA the table lives in device memory, built once when the parameters are laid out; the
// step then launches one kernel for all tensors. On the CPU the same slots are looped over.
#include <cstdint>
#include <vector>

#include "core/ctx.h"
#include "core/memory.h"

namespace attnlab {

// Elements per chunk (a multiple of 4 so that an aligned tensor's chunks stay 16-byte aligned).
inline constexpr int64_t kParamChunk = 4096;

// One parameter tensor. Only `grad` is needed for a gradient norm; AdamW needs param, grad, m, v.
struct ParamSlot {
  Tensor param;       // [n] master weights, updated in place. f32 (f64 on the CPU double path)
  Tensor grad;        // [n] gradient, param's dtype (parameter gradients use the acc dtype)
  Tensor m;           // [n] first moment, param's dtype
  Tensor v;           // [n] second moment, param's dtype
  Tensor param_bf16;  // [n] optional bf16 working copy written from the updated master (undefined: none)
  bool decay = true;  // whether weight decay applies (the caller's decay mask)
};

// Device-side row of the table (plain data, the same layout on host and device).
struct ParamTableEntry {
  void* param;
  void* grad;
  void* m;
  void* v;
  void* param_bf16;  // nullptr when the slot has no working copy
  int64_t numel;
  int64_t chunk_begin;
  int32_t flags;     // kEntry* bits
  int32_t pad_;
};
inline constexpr int32_t kEntryDecay = 1;        // weight decay applies
inline constexpr int32_t kEntryGradAligned = 2;  // grad is 16-byte aligned: float4 loads
inline constexpr int32_t kEntryAllAligned = 4;   // param/grad/m/v 16-byte, bf16 copy 8-byte aligned

class ParamTable {
 public:
  ParamTable() = default;
  // Checks every slot (grad defined; param, m, v either all defined or all undefined; equal
  // sizes; one float dtype; every tensor on ctx's device) and, on CUDA, uploads the table.
  // Synchronous: call it when the parameters are laid out, not in the step.
  ParamTable(const Ctx& ctx, std::vector<ParamSlot> slots);

  const std::vector<ParamSlot>& slots() const { return slots_; }
  size_t size() const { return slots_.size(); }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }            // the gradients' (and parameters') dtype
  bool has_optimizer_state() const { return has_state_; }  // every slot has param, m, v
  int64_t total_numel() const { return total_numel_; }
  int64_t total_chunks() const { return total_chunks_; }
  const std::vector<ParamTableEntry>& entries() const { return entries_; }
  // ParamTableEntry[size()] in device memory (CUDA tables only).
  const ParamTableEntry* device_entries() const {
    return static_cast<const ParamTableEntry*>(device_table_.t().data);
  }

 private:
  std::vector<ParamSlot> slots_;
  std::vector<ParamTableEntry> entries_;
  Buffer device_table_;
  Device device_ = Device::cpu;
  DType dtype_ = DType::f32;
  bool has_state_ = false;
  int64_t total_numel_ = 0, total_chunks_ = 0;
};

// The checks ParamTable makes on each slot (`index` only names it in messages).
void check_param_slot(const ParamSlot& s, size_t index, DType dtype, Device dev);

// Builds the table entry of one slot (chunk_begin 0): what the single-tensor launches pass by value.
ParamTableEntry make_param_entry(const ParamSlot& s);

}  // namespace attnlab
