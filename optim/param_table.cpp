#include "optim/param_table.h"

#include <cstring>
#include <string>

namespace attnlab {

namespace {

bool aligned(const Tensor& t, size_t bytes) {
  return !t.defined() || reinterpret_cast<uintptr_t>(t.data) % bytes == 0;
}

}  // namespace

void check_param_slot(const ParamSlot& s, size_t index, DType dtype, Device dev) {
  const std::string where = "parameter slot " + std::to_string(index) + " ('" + s.grad.name + "')";
  CHECK(s.grad.defined(), where, ": the gradient is undefined");
  CHECK(s.grad.dtype == dtype, where, ": gradient is ", dtype_name(s.grad.dtype),
        ", the first slot's is ", dtype_name(dtype), " (one dtype per table)");
  const bool any_state = s.param.defined() || s.m.defined() || s.v.defined();
  const bool all_state = s.param.defined() && s.m.defined() && s.v.defined();
  CHECK(all_state || !any_state, where, ": param, m and v must be given together");
  for (const Tensor* t : {&s.param, &s.m, &s.v}) {
    if (!t->defined()) continue;
    CHECK(t->dtype == dtype && t->numel() == s.grad.numel(), where, ": '", t->name, "' ",
          dtype_name(t->dtype), t->shape_str(), " does not match the gradient ",
          dtype_name(s.grad.dtype), s.grad.shape_str());
  }
  if (s.param_bf16.defined()) {
    CHECK(all_state, where, ": a bf16 working copy needs the master weights");
    CHECK(s.param_bf16.dtype == DType::bf16 && s.param_bf16.numel() == s.grad.numel(), where,
          ": working copy '", s.param_bf16.name, "' must be bf16 with ", s.grad.numel(),
          " elements, got ", dtype_name(s.param_bf16.dtype), s.param_bf16.shape_str());
    CHECK(dtype == DType::f32, where, ": a bf16 working copy needs f32 master weights");
  }
  check_device(dev, {&s.param, &s.grad, &s.m, &s.v, &s.param_bf16});
}

ParamTableEntry make_param_entry(const ParamSlot& s) {
  ParamTableEntry e{};
  e.param = s.param.data;
  e.grad = s.grad.data;
  e.m = s.m.data;
  e.v = s.v.data;
  e.param_bf16 = s.param_bf16.data;
  e.numel = s.grad.numel();
  e.chunk_begin = 0;
  e.flags = (s.decay ? kEntryDecay : 0) | (aligned(s.grad, 16) ? kEntryGradAligned : 0);
  if (aligned(s.param, 16) && aligned(s.grad, 16) && aligned(s.m, 16) && aligned(s.v, 16) &&
      aligned(s.param_bf16, 8))
    e.flags |= kEntryAllAligned;
  return e;
}

ParamTable::ParamTable(const Ctx& ctx, std::vector<ParamSlot> slots)
    : slots_(std::move(slots)), device_(ctx.device) {
  CHECK(!slots_.empty(), "a parameter table needs at least one slot");
  CHECK(slots_[0].grad.defined(), "parameter slot 0: the gradient is undefined");
  dtype_ = slots_[0].grad.dtype;
  CHECK(dtype_ == DType::f32 || (dtype_ == DType::f64 && device_ == Device::cpu),
        "parameter tables hold f32 gradients (f64 on the CPU), got ", dtype_name(dtype_));
  has_state_ = true;
  entries_.reserve(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    check_param_slot(slots_[i], i, dtype_, device_);
    has_state_ = has_state_ && slots_[i].param.defined();
    ParamTableEntry e = make_param_entry(slots_[i]);
    e.chunk_begin = total_chunks_;
    total_chunks_ += (e.numel + kParamChunk - 1) / kParamChunk;
    total_numel_ += e.numel;
    entries_.push_back(e);
  }
  if (device_ == Device::cuda) {
    const size_t bytes = entries_.size() * sizeof(ParamTableEntry);
    static_assert(sizeof(ParamTableEntry) % 4 == 0);
    device_table_ = Buffer(Device::cuda, DType::u32, {int64_t(bytes / 4)}, "param_table");
    Tensor host(entries_.data(), DType::u32, Device::cpu, {int64_t(bytes / 4)}, "param_table_host");
    copy_tensor(ctx, device_table_.t(), host);
  }
}

}  // namespace attnlab
