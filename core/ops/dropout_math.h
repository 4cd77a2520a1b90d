#pragma once
// The dropout mask, shared by the CPU loop and the CUDA kernel so both keep exactly the same
// elements: element i keeps iff philox_uniform(seed, offset, i) >= p. philox_uniform is k / 2^24
// for the 24-bit integer k = draw >> 8, so the test is the integer comparison k >= ceil(p·2^24)
// (p·2^24 is exact in double), which no float rounding of p can bend on either side.
#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/rng.h"

namespace attnlab {

// Host: the integer threshold for drop probability p in [0, 1).
inline uint32_t dropout_threshold(double p) { return uint32_t(std::ceil(p * 16777216.0)); }

ATTNLAB_HD bool dropout_keeps(uint32_t draw, uint32_t threshold) { return (draw >> 8) >= threshold; }

}  // namespace attnlab
