#pragma once
// Parameter layouts for the optimizer benchmarks: GPT-2's tensors (tied head), carved from flat
// buffers the way a trainer lays them out, so a multi-tensor launch sees realistic sizes.
#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {

// Element counts of GPT-2's parameters for L layers, width C, vocabulary V, context T
// (L=12, C=768, V=50257, T=1024: 124,439,808 parameters in 148 tensors).
inline std::vector<int64_t> gpt2_param_sizes(int64_t L, int64_t C, int64_t V, int64_t T) {
  std::vector<int64_t> s = {V * C, T * C};
  for (int64_t l = 0; l < L; ++l)
    for (int64_t n : {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C}) s.push_back(n);
  s.push_back(C);
  s.push_back(C);
  return s;
}

// GPT-2's decay mask in the same order: the 2-D weights (embeddings, attention and MLP
// projections) decay; biases and LayerNorm parameters do not.
inline std::vector<bool> gpt2_decay_mask(int64_t L) {
  std::vector<bool> d = {true, true};
  for (int64_t l = 0; l < L; ++l)
    for (bool b : {false, false, true, false, true, false, false, false, true, false, true, false}) d.push_back(b);
  d.push_back(false);
  d.push_back(false);
  return d;
}

// Random values for `n` elements without generating n random numbers: a random block of 2^20
// values (an odd size, so tensors do not line up with it) tiled over the range.
inline std::vector<double> tiled_random(size_t n, uint64_t seed, double lo, double hi) {
  const auto block = random_values((1u << 20) + 7, seed, lo, hi);
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = block[i % block.size()];
  return v;
}

// Views of consecutive pieces of a flat buffer.
inline std::vector<Tensor> carve(const Tensor& flat, const std::vector<int64_t>& sizes) {
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t n : sizes) {
    out.push_back(flat.slice0(at, at + n));
    at += n;
  }
  return out;
}

}  // namespace attnlab::bench
