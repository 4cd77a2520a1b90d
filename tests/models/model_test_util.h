#pragma once
// Helpers for the model tests: tiny configs, random parameters (never zeros: biases and norm
// weights get random values too), token batches and gradient read-back.
#include <map>
#include <string>
#include <vector>

#include "core/io/hf_config.h"
#include "core/memory.h"
#include "core/models/model.h"
#include "core/ops/cross_entropy_math.h"
#include "support/testing.h"

namespace attnlab::test {

struct TinyShape {
  int64_t D = 16, L = 2, Hq = 4, Hkv = 2, d = 8, I = 24, V = 37, P = 16;
};

// A small config of `arch`; tied or untied LM head. GPT-2 forces Hkv = Hq and d = D / Hq.
inline ModelConfig tiny_config(ModelArch arch, bool tied, const TinyShape& s = {}) {
  ModelConfig c = model_config_defaults(arch);
  c.hidden_size = s.D;
  c.num_layers = s.L;
  c.num_heads = s.Hq;
  c.num_kv_heads = arch == ModelArch::gpt2 ? s.Hq : s.Hkv;
  c.head_dim = arch == ModelArch::gpt2 ? s.D / s.Hq : s.d;
  c.intermediate_size = s.I;
  c.vocab_size = s.V;
  c.max_position_embeddings = s.P;
  c.tie_word_embeddings = tied;
  c.rope_theta = arch == ModelArch::gpt2 ? 0.0 : 10000.0;  // a small base turns the angles noticeably
  c.source = std::string("tiny ") + model_type_name(arch) + (tied ? " tied" : " untied");
  return c;
}

// Every parameter random: matrices N(0, (scale/sqrt(in))²), norm weights U(0.6, 1.4), biases U(-0.3, 0.3),
// differential λ parameters U(-0.4, 0.4).
// Padding rows of a padded vocabulary stay zero (the same draws with padding on or off).
inline void randomize_params(Model& m, Ctx& ctx, uint64_t seed, double scale = 1.0) {
  uint64_t k = seed;
  for (Param& p : m.params()) {
    const Tensor dst = p.unpadded(p.value);
    const size_t n = size_t(dst.numel());
    std::vector<double> v;
    const bool bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    // Differential attention's λ vectors / λ' stay small so exp(λq·λk) stays moderate.
    const bool lambda = p.name.find(".lambda") != std::string::npos;
    if (p.shape.size() == 2) v = rand_normal(n, scale / std::sqrt(double(p.shape[1])), ++k);
    else if (lambda) v = rand_uniform(n, -0.4, 0.4, ++k);
    else if (bias) v = rand_uniform(n, -0.3, 0.3, ++k);
    else v = rand_uniform(n, 0.6, 1.4, ++k);
    from_host_f64(ctx, dst, v);
  }
  m.params().zero_padding(ctx);
}

struct TokenBatch {
  std::vector<int32_t> ids, targets;
  int64_t valid = 0;
};

// Random ids in [0, V); shifted targets with a few extra positions ignored (kIgnoreIndex).
inline TokenBatch random_batch(int64_t B, int64_t T, int64_t V, uint64_t seed, bool mask_some = true) {
  TokenBatch b;
  b.ids = rand_ints(size_t(B * T), 0, int32_t(V), seed);
  causal_lm_targets(b.ids, B, T, b.targets);
  if (mask_some && T > 2) b.targets[1] = kIgnoreIndex;  // a masked prompt token
  b.valid = 0;
  for (int32_t t : b.targets) b.valid += t != kIgnoreIndex;
  return b;
}

// name → gradient values (only trainable parameters), in the runtime layout.
inline std::map<std::string, std::vector<double>> read_grads(Ctx& ctx, const Model& m) {
  std::map<std::string, std::vector<double>> g;
  for (const Param& p : m.params())
    if (p.grad.defined()) g[p.name] = to_host_f64(ctx, p.grad);
  return g;
}

// Copies every parameter value of `from` into `to` (same config; any devices and dtypes).
inline void copy_params(Ctx& from_ctx, const Model& from, Ctx& to_ctx, Model& to) {
  for (const Param& p : from.params()) from_host_f64(to_ctx, to.params().at(p.name).value, to_host_f64(from_ctx, p.value));
}

}  // namespace attnlab::test
