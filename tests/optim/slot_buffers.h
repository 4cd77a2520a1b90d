#pragma once
// Parameter slots for the optimizer tests: owned buffers (param, grad, m, v, optional bf16
// working copy) filled with random, never-zero values, and the ParamSlot viewing them.
#include <vector>

#include "optim/param_table.h"
#include "support/testing.h"

namespace attnlab::test {

struct SlotValues {
  std::vector<double> param, grad, m, v;
};

// Random state as after some training: v > 0, m of either sign.
inline SlotValues random_slot_values(int64_t n, uint64_t seed) {
  return {rand_uniform(size_t(n), -1, 1, seed), rand_normal(size_t(n), 0.05, seed + 1),
          rand_uniform(size_t(n), -1e-2, 1e-2, seed + 2), rand_uniform(size_t(n), 1e-6, 1e-3, seed + 3)};
}

class SlotBuffers {
 public:
  // `offset` > 0 places every tensor that many elements into its buffer, so that it is not
  // 16-byte aligned (the kernels' scalar paths).
  SlotBuffers(Device dev, DType dt, const SlotValues& vals, bool decay, bool with_bf16, int64_t offset = 0)
      : n_(int64_t(vals.param.size())), offset_(offset) {
    slot.param = place(param_, dev, dt, vals.param, "param");
    slot.grad = place(grad_, dev, dt, vals.grad, "grad");
    slot.m = place(m_, dev, dt, vals.m, "m");
    slot.v = place(v_, dev, dt, vals.v, "v");
    if (with_bf16) {
      bf16_ = make_poisoned(dev, DType::bf16, {n_ + offset_}, "param_bf16");
      slot.param_bf16 = bf16_.t().slice0(offset_, offset_ + n_);
    }
    slot.decay = decay;
  }
  // Only a gradient (for norms).
  SlotBuffers(Device dev, DType dt, const std::vector<double>& grad, int64_t offset = 0)
      : n_(int64_t(grad.size())), offset_(offset) {
    slot.grad = place(grad_, dev, dt, grad, "grad");
  }

  ParamSlot slot;

 private:
  Tensor place(Buffer& b, Device dev, DType dt, const std::vector<double>& v, const char* name) {
    std::vector<double> padded(size_t(offset_), 0.5);
    padded.insert(padded.end(), v.begin(), v.end());
    b = make_tensor(dev, dt, {n_ + offset_}, padded, name);
    return b.t().slice0(offset_, offset_ + n_);
  }
  int64_t n_, offset_;
  Buffer param_, grad_, m_, v_, bf16_;
};

}  // namespace attnlab::test
