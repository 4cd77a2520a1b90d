#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "core/ops/kv_cache_write.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {

std::vector<int32_t> shuffled_slots(int64_t B, int64_t T, int64_t S_cap, uint64_t seed) {
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

// Runs the write on both devices from the same cache contents and compares the whole cache.
void check_against_cpu(DType dt, int64_t B, int64_t T, int64_t H, int64_t S_cap, int64_t d, bool poisoned_cache,
                       uint64_t seed) {
  auto src = round_as(dt, rand_uniform(size_t(B * T * H * d), -2, 2, seed));
  auto slots = shuffled_slots(B, T, S_cap, seed + 1);
  Buffer g_cache = poisoned_cache ? make_poisoned(Device::cuda, dt, {B, H, S_cap, d})
                                  : make_tensor(Device::cuda, dt, {B, H, S_cap, d},
                                                round_as(dt, rand_uniform(size_t(B * H * S_cap * d), -2, 2, seed + 2)));
  // The CPU reference starts from the GPU cache's contents (NaN where poisoned), in f32.
  Buffer c_cache = make_tensor(Device::cpu, DType::f32, {B, H, S_cap, d}, to_host_f64(gpu_ctx(), g_cache.t()));
  Buffer g_src = make_tensor(Device::cuda, dt, {B, T, H, d}, src), c_src = make_tensor(Device::cpu, DType::f32, {B, T, H, d}, src);
  Buffer g_slots = make_ids(Device::cuda, {B, T}, slots), c_slots = make_ids(Device::cpu, {B, T}, slots);
  kv_cache_write_forward(gpu_ctx(), {g_cache.t(), g_src.t(), g_slots.t()});
  kv_cache_write_forward(cpu_ctx(), {c_cache.t(), c_src.t(), c_slots.t()});
  auto got = to_host_f64(gpu_ctx(), g_cache.t()), want = to_host_f64(cpu_ctx(), c_cache.t());
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])))) ++bad;
  EXPECT_EQ(bad, 0u) << dtype_name(dt) << " B=" << B << " T=" << T << " H=" << H << " S_cap=" << S_cap << " d=" << d;
  if (poisoned_cache && T == S_cap) EXPECT_LT(rel_err(got, want), 1e-12) << "a slot was left unwritten";
}

}  // namespace

class KvCacheWriteGpu : public ::testing::TestWithParam<DType> {};

TEST_P(KvCacheWriteGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  // Odd head dims take the one-element path, multiples of 8 the 16-byte path.
  check_against_cpu(dt, 3, 5, 2, 11, 7, false, 10);   // prefill-like, odd sizes
  check_against_cpu(dt, 5, 1, 3, 13, 64, false, 20);  // one decode step per row
  check_against_cpu(dt, 2, 17, 2, 17, 24, true, 30);  // every slot written: no NaN may remain
  check_against_cpu(dt, 1, 3, 1, 3, 1, true, 40);     // d = 1
}

TEST_P(KvCacheWriteGpu, OutOfRangeSlotIsSkipped) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t B = 2, T = 2, H = 2, S_cap = 4, d = 8;
  auto cache0 = round_as(dt, rand_uniform(size_t(B * H * S_cap * d), -2, 2, 50));
  auto src = round_as(dt, rand_uniform(size_t(B * T * H * d), 3, 4, 51));
  Buffer cache = make_tensor(Device::cuda, dt, {B, H, S_cap, d}, cache0);
  Buffer tsrc = make_tensor(Device::cuda, dt, {B, T, H, d}, src);
  Buffer slots = make_ids(Device::cuda, {B, T}, {1, 4, -1, 2});  // 4 and -1 are outside [0, 4)
  kv_cache_write_forward(gpu_ctx(), {cache.t(), tsrc.t(), slots.t()});
  auto got = to_host_f64(gpu_ctx(), cache.t());
  std::vector<double> want = cache0;
  for (auto [b, t, s] : {std::array<int64_t, 3>{0, 0, 1}, std::array<int64_t, 3>{1, 1, 2}})
    for (int64_t h = 0; h < H; ++h)
      for (int64_t c = 0; c < d; ++c)
        want[size_t(((b * H + h) * S_cap + s) * d + c)] = src[size_t(((b * T + t) * H + h) * d + c)];
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, KvCacheWriteGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
