#pragma once
// Helpers for the padded-vocabulary tests (model_vocab_pad_test.cpp, model_vocab_pad_gpu_test.cpp):
// the padding rows of a parameter, one training pass read back without padding, and the AdamW
// settings both use.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/config/optim_config.h"
#include "models/model_test_util.h"

namespace attnlab::test {

// The padding rows [V, Vp) of a padded parameter's value or gradient, on the host.
inline std::vector<double> padding_of(Ctx& ctx, const Param& p, const Tensor& t) {
  const std::vector<double> all = to_host_f64(ctx, t);
  return std::vector<double>(all.begin() + std::ptrdiff_t(p.stored_numel()), all.end());
}

inline bool all_zero(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; });
}

struct PadPass {
  std::vector<double> logits;  // [B, T, V]
  double loss = 0;
  std::map<std::string, std::vector<double>> grads;  // the checkpoint rows only (padding dropped)
};

// plan, zero the gradients, forward with targets, backward; ids and targets on the model's device.
inline PadPass pad_pass(Model& m, Ctx& ctx, const TokenBatch& tb, int64_t B, int64_t T) {
  m.plan(ctx, B, T);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.params().zero_grads(ctx);
  PadPass p;
  p.loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
  p.logits = m.logits_f64(ctx);
  m.backward(ctx);
  for (const Param& q : m.params()) p.grads[q.name] = to_host_f64(ctx, q.unpadded(q.grad));
  return p;
}

// AdamW with weight decay and clipping: what would move a nonzero-gradient padding row.
inline config::OptimConfig decaying_adamw() {
  config::OptimConfig oc;
  oc.lr = 3e-2;
  oc.weight_decay = 0.1;
  oc.betas = {0.9, 0.95};
  oc.eps = 1e-8;
  oc.grad_clip = 1.0;
  return oc;
}

}  // namespace attnlab::test
