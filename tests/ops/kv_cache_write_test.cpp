#include "core/ops/kv_cache_write.h"

#include <algorithm>
#include <random>

#include "support/testing.h"

namespace attnlab::test {

namespace {

// Distinct slots per row: the first T of a seeded shuffle of [0, S_cap).
std::vector<int32_t> distinct_slots(int64_t B, int64_t T, int64_t S_cap, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int32_t> out;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> all(static_cast<size_t>(S_cap));
    for (int64_t s = 0; s < S_cap; ++s) all[size_t(s)] = int32_t(s);
    std::shuffle(all.begin(), all.end(), g);
    out.insert(out.end(), all.begin(), all.begin() + T);
  }
  return out;
}

// The cache after the write, computed from the definition.
std::vector<double> expected_cache(std::vector<double> cache, const std::vector<double>& src,
                                   const std::vector<int32_t>& slots, int64_t B, int64_t T, int64_t H,
                                   int64_t S_cap, int64_t d) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < d; ++c)
          cache[size_t(((b * H + h) * S_cap + slots[size_t(b * T + t)]) * d + c)] =
              src[size_t(((b * T + t) * H + h) * d + c)];
  return cache;
}

}  // namespace

TEST(KvCacheWrite, WritesTheAddressedSlotsAndKeepsTheRest) {
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t B = 3, T = 4, H = 2, S_cap = 9, d = 5;
    auto cache0 = round_as(dt, rand_uniform(size_t(B * H * S_cap * d), -2, 2, 1));
    auto src = round_as(dt, rand_uniform(size_t(B * T * H * d), -2, 2, 2));
    auto slots = distinct_slots(B, T, S_cap, 3);
    Buffer cache = make_tensor(Device::cpu, dt, {B, H, S_cap, d}, cache0);
    Buffer tsrc = make_tensor(Device::cpu, dt, {B, T, H, d}, src);
    Buffer tslots = make_ids(Device::cpu, {B, T}, slots);
    kv_cache_write_forward(cpu_ctx(), {cache.t(), tsrc.t(), tslots.t()});
    const auto want = expected_cache(cache0, src, slots, B, T, H, S_cap, d);
    EXPECT_EQ(to_host_f64(cpu_ctx(), cache.t()), want) << dtype_name(dt);
    EXPECT_NE(want, cache0);
  }
}

TEST(KvCacheWrite, DecodeStepWritesEachRowAtItsOwnLength) {
  // One token per row at slots 2, 0, 5: the decode step of three sequences of lengths 2, 0, 5.
  const int64_t B = 3, H = 1, S_cap = 6, d = 3;
  auto cache0 = rand_uniform(size_t(B * H * S_cap * d), 1, 2, 4);
  auto src = rand_uniform(size_t(B * H * d), -2, -1, 5);
  Buffer cache = make_tensor(Device::cpu, DType::f64, {B, H, S_cap, d}, cache0);
  Buffer tsrc = make_tensor(Device::cpu, DType::f64, {B, 1, H, d}, src);
  Buffer slots = make_ids(Device::cpu, {B, 1}, {2, 0, 5});
  kv_cache_write_forward(cpu_ctx(), {cache.t(), tsrc.t(), slots.t()});
  auto got = to_host_f64(cpu_ctx(), cache.t());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S_cap; ++s)
      for (int64_t c = 0; c < d; ++c) {
        const int64_t slot = b == 0 ? 2 : b == 1 ? 0 : 5;
        const double want = s == slot ? src[size_t(b * d + c)] : cache0[size_t((b * S_cap + s) * d + c)];
        ASSERT_EQ(got[size_t((b * S_cap + s) * d + c)], want) << "row " << b << " slot " << s;
      }
}

TEST(KvCacheWrite, RejectsBadInputs) {
  Buffer cache(Device::cpu, DType::f32, {2, 3, 8, 4}), src(Device::cpu, DType::f32, {2, 5, 3, 4});
  Buffer slots = make_ids(Device::cpu, {2, 5}, {0, 1, 2, 3, 4, 0, 1, 2, 3, 8});
  std::string msg;
  try {
    kv_cache_write_forward(cpu_ctx(), {cache.t(), src.t(), slots.t()});
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("slot 8 of row 1 token 4"), std::string::npos) << msg;
  Buffer wrong_heads(Device::cpu, DType::f32, {2, 5, 2, 4}), f64(Device::cpu, DType::f64, {2, 5, 3, 4});
  Buffer ok_slots = make_ids(Device::cpu, {2, 5}, {0, 1, 2, 3, 4, 0, 1, 2, 3, 7});
  EXPECT_THROW(kv_cache_write_forward(cpu_ctx(), {cache.t(), wrong_heads.t(), ok_slots.t()}), Error);
  EXPECT_THROW(kv_cache_write_forward(cpu_ctx(), {cache.t(), f64.t(), ok_slots.t()}), Error);
  EXPECT_THROW(kv_cache_write_forward(cpu_ctx(), {cache.t(), src.t(), ok_slots.t().view({10})}), Error);
  Buffer float_slots(Device::cpu, DType::f32, {2, 5});
  EXPECT_THROW(kv_cache_write_forward(cpu_ctx(), {cache.t(), src.t(), float_slots.t()}), Error);
}

}  // namespace attnlab::test
