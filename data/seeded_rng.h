#pragma once
// A small seeded generator for data order and synthetic data: SplitMix64 (Steele, Lea, Flood,
// OOPSLA'14) with unbiased bounded draws (Lemire's multiply-and-reject). Unlike the std::
// distributions its output is the same on every platform and library, so shuffles and generated
// files are reproducible from the seed alone.
#include <cstdint>
#include <vector>

namespace attnlab::data {

class SeededRng {
 public:
  explicit SeededRng(uint64_t seed, uint64_t stream = 0) : state_(seed ^ (stream * 0xD1B54A32D192ED03ull)) {
    next();  // decorrelate nearby seeds
  }
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), bound > 0.
  uint64_t below(uint64_t bound) {
    unsigned __int128 m = (unsigned __int128)next() * bound;
    uint64_t low = uint64_t(m);
    if (low < bound) {
      const uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) {
        m = (unsigned __int128)next() * bound;
        low = uint64_t(m);
      }
    }
    return uint64_t(m >> 64);
  }
  // Uniform integer in [lo, hi].
  int64_t range(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo) + 1)); }
  bool chance(double p) { return double(next() >> 11) * 0x1.0p-53 < p; }
  template <class T> const T& pick(const std::vector<T>& v) { return v[size_t(below(v.size()))]; }

 private:
  uint64_t state_;
};

}  // namespace attnlab::data
