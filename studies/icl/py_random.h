#pragma once
// CPython's `random` module, bit for bit (CPython 3.11, Modules/_randommodule.c and
// Lib/random.py), so that seed-001 demonstration sets (METHODS §2.5) are the ones the original
// drew with `random.seed(s); random.sample(range(N), k)`.
//
//   seed(n)        random.seed(n) for an int: init_by_array over the 32-bit words of |n|, least
//                  significant first (one word 0 for n = 0). Other seed types (str, bytes, None)
//                  are not supported.
//   getrandbits(k) k <= 32: the top k bits of one MT19937 output; k > 32: 32-bit words filled
//                  from the least significant end, the last (most significant) word keeping its
//                  top bits.
//   randbelow(n)   Random._randbelow_with_getrandbits: getrandbits(n.bit_length()) until < n.
//   sample(n, k)   random.sample(range(n), k). setsize = 21, plus 4**ceil(log(3k, 4)) when k > 5;
//                  n <= setsize: the pool algorithm (partial Fisher-Yates over a list of n),
//                  else the set algorithm (redraw indices already taken).
//   random()       genrand_res53: (a >> 5, b >> 6) of two outputs joined into 53 bits.
//   gauss()        Random.gauss (Box-Muller with the second value cached; seed() clears it).
#include <array>
#include <cstdint>
#include <vector>

namespace attnlab::icl {

class PyRandom {
 public:
  // random.seed(seed): a negative seed seeds as its absolute value, as CPython does.
  explicit PyRandom(int64_t seed = 0) { this->seed(seed); }

  void seed(int64_t seed);
  // The magnitude of a non-negative seed (seeds above 2**63 - 1, such as 2**63 + 11).
  void seed_unsigned(uint64_t magnitude);
  // init_by_array(key): the seeding of any int, given as 32-bit words, least significant first.
  void seed_words(const std::vector<uint32_t>& key);

  uint32_t next_u32();                 // genrand_uint32
  uint64_t getrandbits(int k);         // 0 <= k <= 64
  uint64_t randbelow(uint64_t n);      // n >= 1
  double random();                     // [0, 1), 53 random bits
  double gauss(double mu = 0.0, double sigma = 1.0);

  // random.sample(range(n), k): k distinct values of [0, n) in selection order; 0 <= k <= n.
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  static constexpr int kN = 624;
  std::array<uint32_t, kN> mt_{};
  int index_ = kN + 1;
  bool has_gauss_next_ = false;
  double gauss_next_ = 0.0;
  void init_genrand(uint32_t s);
  void twist();
};

// Whether random.sample(range(n), k) takes the pool algorithm (true) or the set algorithm.
bool py_sample_uses_pool(int64_t n, int64_t k);

// The k demonstration indices of METHODS §2.5: random.seed(seed); random.sample(range(n_train), k).
std::vector<int64_t> demonstration_indices(int64_t n_train, int64_t k, int64_t seed);

}  // namespace attnlab::icl
