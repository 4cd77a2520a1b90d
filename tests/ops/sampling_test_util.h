#pragma once
// Helpers shared by the sampling tests (CPU and GPU): a runner that calls sampling_forward on any
// device and dtype with poisoned outputs and reads them back, and random `seen` bitmasks.
#include <cstdint>
#include <random>
#include <vector>

#include "core/ops/sampling.h"
#include "support/testing.h"

namespace attnlab::test {

struct SamplingConfig {
  float rp = 1.0f;
  float temperature = 1.0f;
  bool greedy = false;
  int64_t top_k = 0;
  double top_p = 1.0;
};

struct SamplingResult {
  std::vector<int32_t> ids;
  std::vector<double> logprobs;
};

// logits: B·V values (rounded to dt by the upload); seen: B·ceil(V/32) words (may be empty when
// cfg.rp == 1).
inline SamplingResult run_sampling(Device dev, DType dt, int64_t rows, int64_t vocab,
                                   const std::vector<double>& logits, const std::vector<uint32_t>& seen,
                                   const SamplingConfig& cfg, uint64_t offset, bool with_logprobs = true) {
  Ctx& c = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  Buffer tl = make_tensor(dev, dt, {rows, vocab}, logits, "logits");
  Buffer ts;
  if (!seen.empty())
    ts = make_tensor(dev, DType::u32, {rows, sampling_seen_words(vocab)},
                     std::vector<double>(seen.begin(), seen.end()), "seen");
  Buffer ids = make_poisoned(dev, DType::i32, {rows}, "ids");
  Buffer lp = make_poisoned(dev, acc_dtype(dt), {rows}, "logprobs");
  SamplingArgs a;
  a.logits = tl.t();
  if (!seen.empty()) a.seen = ts.t();
  a.repetition_penalty = cfg.rp;
  a.temperature = cfg.temperature;
  a.greedy = cfg.greedy;
  a.top_k = cfg.top_k;
  a.top_p = cfg.top_p;
  a.rng_offset = offset;
  a.out_ids = ids.t();
  if (with_logprobs) a.out_logprobs = lp.t();
  sampling_forward(c, a);
  SamplingResult r;
  for (double v : to_host_f64(c, ids.t())) r.ids.push_back(int32_t(v));
  if (with_logprobs) r.logprobs = to_host_f64(c, lp.t());
  return r;
}

// Each token seen with probability `density`.
inline std::vector<uint32_t> random_seen(int64_t rows, int64_t vocab, double density, uint64_t seed) {
  const int64_t words = sampling_seen_words(vocab);
  std::vector<uint32_t> bits(size_t(rows * words), 0u);
  std::mt19937_64 g(seed);
  std::bernoulli_distribution coin(density);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < vocab; ++v)
      if (coin(g)) bits[size_t(r * words + (v >> 5))] |= 1u << (v & 31);
  return bits;
}

inline bool seen_bit(const std::vector<uint32_t>& seen, int64_t words, int64_t row, int64_t v) {
  return !seen.empty() && ((seen[size_t(row * words + (v >> 5))] >> (v & 31)) & 1u);
}

}  // namespace attnlab::test
