// GPU vs CPU for sampling_forward and sampling_mark_seen. The CPU f32 path gets the very values
// the GPU reads (bf16 logits are rounded first), and both make every decision on the same integer
// masses (core/ops/sampling_math.h), so ids must match exactly on any logits, including draws and
// cuts that fall inside long runs of equal logits; log-probs differ only by libm's last bits.
#include <algorithm>
#include <cmath>

#include "ops/sampling_test_util.h"

namespace attnlab::test {
namespace {

struct NamedConfig {
  const char* name;
  SamplingConfig cfg;
};

// Each exercises one path of the kernel: greedy; the gathered top-k path (k ≤ 512); the radix path
// for top-p alone, plain sampling, and top-k > 512.
const std::vector<NamedConfig>& configs() {
  static const std::vector<NamedConfig> all = {
      {"greedy_rp", {1.3f, 0.0f, false, 0, 1.0}},
      {"qwen", {1.1f, 0.7f, false, 20, 0.8}},
      {"top_k50", {1.0f, 1.0f, false, 50, 1.0}},
      {"top_k1", {1.0f, 0.9f, false, 1, 1.0}},
      {"top_p0.9", {1.2f, 0.8f, false, 0, 0.9}},
      {"plain", {1.0f, 1.0f, false, 0, 1.0}},
      {"top_k600_p0.95", {1.0f, 1.5f, false, 600, 0.95}},
  };
  return all;
}

void expect_gpu_matches_cpu(DType dt, int64_t rows, int64_t vocab, const std::vector<double>& logits,
                            const std::vector<uint32_t>& seen, const NamedConfig& nc, uint64_t offset,
                            const std::string& label) {
  const std::vector<uint32_t> no_seen;
  const auto& s = nc.cfg.rp != 1.0f ? seen : no_seen;
  const SamplingResult gpu = run_sampling(Device::cuda, dt, rows, vocab, logits, s, nc.cfg, offset);
  const SamplingResult cpu = run_sampling(Device::cpu, DType::f32, rows, vocab, logits, s, nc.cfg, offset);
  for (int64_t r = 0; r < rows; ++r) {
    ASSERT_EQ(gpu.ids[size_t(r)], cpu.ids[size_t(r)]) << label << " " << nc.name << " row " << r;
    const double ref = cpu.logprobs[size_t(r)];
    ASSERT_TRUE(std::isfinite(gpu.logprobs[size_t(r)])) << label << " " << nc.name << " row " << r;
    EXPECT_NEAR(gpu.logprobs[size_t(r)], ref, 1e-6 * (1 + std::fabs(ref))) << label << " " << nc.name << " row " << r;
  }
}

class SamplingGpu : public ::testing::TestWithParam<DType> {};

TEST_P(SamplingGpu, MatchesCpuOnRandomLogits) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  uint64_t offset = 1;
  for (int64_t vocab : {5, 1031, 50257, 151936})
    for (int64_t rows : {1, 7, 33}) {
      const auto logits = round_as(dt, rand_normal(size_t(rows * vocab), 2.5, uint64_t(vocab * 100 + rows)));
      const auto seen = random_seen(rows, vocab, 0.01, uint64_t(vocab + rows));
      for (const NamedConfig& nc : configs()) {
        expect_gpu_matches_cpu(dt, rows, vocab, logits, seen, nc, offset,
                               "V=" + std::to_string(vocab) + " B=" + std::to_string(rows));
        offset += uint64_t(rows);
      }
    }
}

// Few distinct logits: the k-th logit's group overflows the gathered candidates, top-p cuts and
// draws land inside groups of equal logits, so the kernel resolves positions by id.
TEST_P(SamplingGpu, MatchesCpuWithLongRunsOfEqualLogits) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  uint64_t offset = 7;
  for (int64_t vocab : {1031, 50257, 151936}) {
    const int64_t rows = 7;
    auto logits = rand_normal(size_t(rows * vocab), 1.5, uint64_t(vocab));
    for (double& v : logits) v = std::round(v);  // integers in about [-7, 7]
    const auto seen = random_seen(rows, vocab, 0.05, uint64_t(vocab) + 3);
    for (const NamedConfig& nc : configs()) {
      expect_gpu_matches_cpu(dt, rows, vocab, logits, seen, nc, offset, "ties V=" + std::to_string(vocab));
      offset += uint64_t(rows);
    }
    // Many draws on one tied row: positions deep inside the groups.
    std::vector<double> same;
    for (int64_t r = 0; r < 33; ++r) same.insert(same.end(), logits.begin(), logits.begin() + vocab);
    for (double top_p : {1.0, 0.5})
      expect_gpu_matches_cpu(dt, 33, vocab, same, {}, {"tied_rows", {1.0f, 1.0f, false, 0, top_p}}, 99,
                             "tied rows V=" + std::to_string(vocab));
  }
}

TEST_P(SamplingGpu, IdsWithoutLogprobsAndRepeatable) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const int64_t rows = 9, vocab = 50257;
  const auto logits = round_as(dt, rand_normal(size_t(rows * vocab), 2.0, 42));
  const SamplingConfig cfg{1.0f, 0.7f, false, 20, 0.8};
  const auto with = run_sampling(Device::cuda, dt, rows, vocab, logits, {}, cfg, 5);
  const auto again = run_sampling(Device::cuda, dt, rows, vocab, logits, {}, cfg, 5);
  const auto without = run_sampling(Device::cuda, dt, rows, vocab, logits, {}, cfg, 5, false);
  EXPECT_EQ(with.ids, again.ids);
  EXPECT_EQ(with.logprobs, again.logprobs);
  EXPECT_EQ(with.ids, without.ids);
  const auto greedy = run_sampling(Device::cuda, dt, rows, vocab, logits, {}, {1.0f, 0.0f, false, 0, 1.0}, 5, false);
  for (int64_t r = 0; r < rows; ++r) {
    auto row = logits.begin() + r * vocab;
    EXPECT_EQ(greedy.ids[size_t(r)], int32_t(std::max_element(row, row + vocab) - row)) << r;
  }
}

// Draw frequencies on the GPU, B = 64 rows per call (the largest batch generation uses).
TEST_P(SamplingGpu, DrawFrequenciesWithinFourSigma) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  const std::vector<double> p = {0.4, 0.25, 0.15, 0.1, 0.07, 0.03};
  const int64_t vocab = 6000, rows = 64, calls = 320;  // p spread over ids 0, 1000, ..., 5000
  std::vector<double> row(size_t(vocab), -1e4);
  for (size_t j = 0; j < p.size(); ++j) row[j * 1000] = std::log(p[j]);
  std::vector<double> logits;
  for (int64_t r = 0; r < rows; ++r) logits.insert(logits.end(), row.begin(), row.end());
  const auto stored = round_as(dt, logits);
  std::vector<double> q(p.size());  // the probabilities of the stored (maybe bf16-rounded) logits
  double z = 0;
  for (size_t j = 0; j < p.size(); ++j) z += q[j] = std::exp(stored[j * 1000]);
  std::vector<int64_t> counts(p.size(), 0);
  for (int64_t k = 0; k < calls; ++k) {
    const auto r = run_sampling(Device::cuda, dt, rows, vocab, logits, {}, {}, uint64_t(k * rows), false);
    for (int32_t id : r.ids) {
      ASSERT_TRUE(id >= 0 && id % 1000 == 0 && id < 6000) << id;
      ++counts[size_t(id / 1000)];
    }
  }
  const double n = double(rows * calls);
  for (size_t j = 0; j < p.size(); ++j) {
    const double pj = q[j] / z;
    EXPECT_LE(std::fabs(double(counts[j]) - n * pj), 4 * std::sqrt(n * pj * (1 - pj))) << "token " << j * 1000;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SamplingGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(SamplingGpuMarkSeen, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const int64_t rows = 7, vocab = 151936, words = sampling_seen_words(vocab), len = 331;
  auto prompt = rand_ints(size_t(rows * len), -1, int32_t(vocab), 17);  // -1: padding
  prompt[3] = int32_t(vocab - 1);
  prompt[4] = 0;
  const auto step = rand_ints(size_t(rows), 0, int32_t(vocab), 18);
  const auto initial = random_seen(rows, vocab, 0.001, 19);
  const std::vector<double> init(initial.begin(), initial.end());
  std::vector<double> result[2];
  for (Device dev : {Device::cpu, Device::cuda}) {
    Ctx& c = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
    Buffer seen = make_tensor(dev, DType::u32, {rows, words}, init);
    sampling_mark_seen(c, seen.t(), make_ids(dev, {rows, len}, prompt).t());
    sampling_mark_seen(c, seen.t(), make_ids(dev, {rows}, step).t());
    result[dev == Device::cuda] = to_host_f64(c, seen.t());
  }
  EXPECT_EQ(result[1], result[0]);
  EXPECT_NE(result[0], init);
}

}  // namespace
}  // namespace attnlab::test
