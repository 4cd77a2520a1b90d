#include "studies/icl/py_random.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <unordered_set>

#include "core/error.h"

namespace attnlab::icl {

void PyRandom::init_genrand(uint32_t s) {
  mt_[0] = s;
  for (int i = 1; i < kN; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + uint32_t(i);
  index_ = kN;
}

void PyRandom::seed_words(const std::vector<uint32_t>& key) {
  CHECK(!key.empty(), "init_by_array needs at least one word (the seed 0 is the word 0)");
  init_genrand(19650218u);
  const size_t key_length = key.size();
  size_t i = 1, j = 0;
  for (size_t k = std::max<size_t>(kN, key_length); k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + uint32_t(j);
    ++i;
    ++j;
    if (i >= size_t(kN)) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (size_t k = kN - 1; k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - uint32_t(i);
    ++i;
    if (i >= size_t(kN)) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000u;  // a non-zero initial state is guaranteed
  index_ = kN;
  has_gauss_next_ = false;
}

void PyRandom::seed_unsigned(uint64_t magnitude) {
  std::vector<uint32_t> key{uint32_t(magnitude)};
  if (magnitude >> 32) key.push_back(uint32_t(magnitude >> 32));
  seed_words(key);
}

void PyRandom::seed(int64_t seed) {
  // |INT64_MIN| = 2**63 is representable as an unsigned magnitude.
  const uint64_t magnitude = seed < 0 ? uint64_t(0) - uint64_t(seed) : uint64_t(seed);
  seed_unsigned(magnitude);
}

void PyRandom::twist() {
  constexpr uint32_t kMatrixA = 0x9908b0dfu, kUpper = 0x80000000u, kLower = 0x7fffffffu;
  constexpr int kM = 397;
  auto mix = [&](uint32_t a, uint32_t b, uint32_t c) {
    const uint32_t y = (a & kUpper) | (b & kLower);
    return c ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
  };
  int kk = 0;
  for (; kk < kN - kM; ++kk) mt_[kk] = mix(mt_[kk], mt_[kk + 1], mt_[kk + kM]);
  for (; kk < kN - 1; ++kk) mt_[kk] = mix(mt_[kk], mt_[kk + 1], mt_[kk + (kM - kN)]);
  mt_[kN - 1] = mix(mt_[kN - 1], mt_[0], mt_[kM - 1]);
  index_ = 0;
}

uint32_t PyRandom::next_u32() {
  if (index_ >= kN) twist();
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t PyRandom::getrandbits(int k) {
  CHECK(k >= 0 && k <= 64, "getrandbits supports 0 to 64 bits here, not ", k);
  if (k == 0) return 0;  // draws nothing
  if (k <= 32) return next_u32() >> (32 - k);
  const uint64_t low = next_u32();
  const uint64_t high = next_u32() >> (64 - k);
  return low | (high << 32);
}

uint64_t PyRandom::randbelow(uint64_t n) {
  CHECK(n >= 1, "randbelow needs n >= 1");
  const int k = 64 - std::countl_zero(n);  // n.bit_length()
  uint64_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

double PyRandom::random() {
  const uint32_t a = next_u32() >> 5, b = next_u32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

double PyRandom::gauss(double mu, double sigma) {
  double z;
  if (has_gauss_next_) {
    z = gauss_next_;
    has_gauss_next_ = false;
  } else {
    const double x2pi = random() * (2.0 * std::numbers::pi);
    const double g2rad = std::sqrt(-2.0 * std::log(1.0 - random()));
    z = std::cos(x2pi) * g2rad;
    gauss_next_ = std::sin(x2pi) * g2rad;
    has_gauss_next_ = true;
  }
  return mu + z * sigma;
}

bool py_sample_uses_pool(int64_t n, int64_t k) {
  int64_t setsize = 21;  // size of a small set minus size of an empty list
  if (k > 5) {
    // math.log(k * 3, 4) is log(3k) / log(4) in doubles; its ceiling is the exponent.
    const double e = std::ceil(std::log(double(k) * 3.0) / std::log(4.0));
    if (e >= 31) return true;  // 4**31 > 2**62: no int64 population is larger
    setsize += int64_t(1) << (2 * int(e));
  }
  return n <= setsize;
}

std::vector<int64_t> PyRandom::sample(int64_t n, int64_t k) {
  CHECK(n >= 0 && k >= 0 && k <= n, "random.sample(range(", n, "), ", k, "): the sample is larger than the population or negative");
  std::vector<int64_t> result(static_cast<size_t>(k));
  if (py_sample_uses_pool(n, k)) {
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[size_t(i)] = i;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = int64_t(randbelow(uint64_t(n - i)));
      result[size_t(i)] = pool[size_t(j)];
      pool[size_t(j)] = pool[size_t(n - i - 1)];  // the unselected last item fills the vacancy
    }
  } else {
    std::unordered_set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = int64_t(randbelow(uint64_t(n)));
      while (selected.count(j)) j = int64_t(randbelow(uint64_t(n)));
      selected.insert(j);
      result[size_t(i)] = j;
    }
  }
  return result;
}

std::vector<int64_t> demonstration_indices(int64_t n_train, int64_t k, int64_t seed) {
  if (k > n_train)
    FAIL_WITH("cannot draw ", k, " demonstrations from a training set of ", n_train,
              " records; lower --k or use the full training split");
  PyRandom rng(seed);
  return rng.sample(n_train, k);
}

}  // namespace attnlab::icl
