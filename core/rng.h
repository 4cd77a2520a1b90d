#pragma once
// Philox4x32-10 (Salmon et al., SC'11): a counter-based generator, so element i of a random op
// draws from counter (offset + i / 4, lane i % 4) under key = seed, on the CPU and the GPU
// alike. Dropout masks and initialisations are therefore identical on both backends.
#include <cstdint>

#include "core/hd.h"

namespace attnlab {

struct Philox4 { uint32_t v[4]; };

ATTNLAB_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

ATTNLAB_HD Philox4 philox4x32(uint64_t counter, uint64_t seed) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// The i-th 32-bit draw of the stream starting at `offset` (offset counts 32-bit draws).
ATTNLAB_HD uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t i) {
  uint64_t n = offset + i;
  Philox4 r = philox4x32(n >> 2, seed);
  return r.v[n & 3];
}

// Uniform in [0, 1) with 24 random bits (exactly representable in float).
ATTNLAB_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return float(philox_u32(seed, offset, i) >> 8) * (1.0f / 16777216.0f);
}

}  // namespace attnlab
