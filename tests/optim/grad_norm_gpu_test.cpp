#include <cmath>
#include <cstring>

#include "optim/adamw.h"
#include "optim/grad_norm.h"
#include "optim/slot_buffers.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// 40 prime-sized tensors (a few misaligned by one element) plus one of several million elements.
std::vector<int64_t> prime_sizes() {
  std::vector<int64_t> s = {1, 2, 3, 5, 7, 4093, 4099, 8191, 65537, 3000017};
  for (int64_t p : {101, 211, 307, 401, 503, 601, 701, 809, 907, 1009, 2003, 3001, 5003, 7001, 9001, 10007,
                    20011, 30011, 40009, 50021, 60013, 70001, 80021, 90001, 100003, 131071, 200003, 300007,
                    400009, 524287})
    s.push_back(p);
  return s;
}

struct Grads {
  std::vector<SlotBuffers> bufs;
  std::vector<ParamSlot> slots;
};
Grads make_grads(Device dev, const std::vector<int64_t>& sizes, uint64_t seed) {
  Grads g;
  for (size_t k = 0; k < sizes.size(); ++k)
    g.bufs.emplace_back(dev, DType::f32, rand_normal(size_t(sizes[k]), 1e-3 * double(k % 7 + 1), seed + k),
                        int64_t(k % 4 == 3));
  for (auto& b : g.bufs) g.slots.push_back(b.slot);
  return g;
}

struct NormOut {
  std::vector<double> norm, scale, flag;
};
NormOut run(Ctx& c, const ParamTable& t, double max_norm) {
  Buffer norm = make_poisoned(c.device, DType::f32, {1}), scale = make_poisoned(c.device, DType::f32, {1});
  Buffer flag = make_poisoned(c.device, DType::i32, {1});
  grad_norm(c, t, {norm.t(), scale.t(), flag.t(), max_norm});
  return {to_host_f64(c, norm.t()), to_host_f64(c, scale.t()), to_host_f64(c, flag.t())};
}

TEST(GradNormGpu, MatchesCpuOnPrimeSizes) {
  ATTNLAB_REQUIRE_GPU();
  const auto sizes = prime_sizes();
  Grads cpu = make_grads(Device::cpu, sizes, 77), gpu = make_grads(Device::cuda, sizes, 77);
  ParamTable tc(cpu_ctx(), cpu.slots), tg(gpu_ctx(), gpu.slots);
  NormOut rc = run(cpu_ctx(), tc, 0.05), rg = run(gpu_ctx(), tg, 0.05);
  ASSERT_GT(rc.norm[0], 0.05);  // so that the clip scale is below 1
  EXPECT_LT(rel_err(rg.norm, rc.norm), 1e-6);
  EXPECT_LT(rel_err(rg.scale, rc.scale), 1e-6);
  EXPECT_EQ(rg.flag[0], 0.0);
  NormOut unclipped = run(gpu_ctx(), tg, 1e3);
  EXPECT_EQ(unclipped.scale[0], 1.0);
  // The unrounded Σ g²: √ of it rounds to the f32 norm the kernel wrote.
  Buffer norm = make_poisoned(Device::cuda, DType::f32, {1}), sumsq = make_poisoned(Device::cuda, DType::f64, {1});
  GradNormArgs a{norm.t(), {}, {}, 0.0};
  a.sumsq = sumsq.t();
  grad_norm(gpu_ctx(), tg, a);
  const double s = to_host_f64(gpu_ctx(), sumsq.t())[0];
  EXPECT_LT(std::fabs(s - rc.norm[0] * rc.norm[0]), 1e-6 * s);
  EXPECT_EQ(double(float(std::sqrt(s))), to_host_f64(gpu_ctx(), norm.t())[0]);
}

TEST(GradNormGpu, RunToRunBitwiseIdentical) {
  ATTNLAB_REQUIRE_GPU();
  Grads gpu = make_grads(Device::cuda, prime_sizes(), 5);
  ParamTable t(gpu_ctx(), gpu.slots);
  NormOut first = run(gpu_ctx(), t, 0.01);
  for (int i = 0; i < 5; ++i) {
    NormOut again = run(gpu_ctx(), t, 0.01);
    float a = float(first.norm[0]), b = float(again.norm[0]);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << "run " << i << ": " << a << " vs " << b;
    EXPECT_EQ(first.scale[0], again.scale[0]);
  }
}

TEST(GradNormGpu, FlagsNaNAndInf) {
  ATTNLAB_REQUIRE_GPU();
  for (double bad : {double(NAN), double(INFINITY)}) {
    Grads gpu = make_grads(Device::cuda, {4099, 65537, 3}, 8);
    auto v = to_host_f64(gpu_ctx(), gpu.slots[1].grad);
    v[65536] = bad;  // the last element: the scalar tail of the last chunk
    from_host_f64(gpu_ctx(), gpu.slots[1].grad, v);
    ParamTable t(gpu_ctx(), gpu.slots);
    NormOut r = run(gpu_ctx(), t, 1.0);
    EXPECT_EQ(r.flag[0], 1.0) << bad;
    EXPECT_FALSE(std::isfinite(r.norm[0])) << bad;
  }
}

// The step as the trainer runs it, with no host sync: norm → clip scale → AdamW's grad scale,
// NaN flag → AdamW's skip. Compared with the same chain on the CPU.
TEST(GradNormGpu, ClipScaleFeedsAdamW) {
  ATTNLAB_REQUIRE_GPU();
  const std::vector<int64_t> sizes = {4099, 1031, 65537};
  std::vector<SlotBuffers> cb, gb;
  std::vector<ParamSlot> cs, gs;
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto vals = random_slot_values(sizes[k], 40 + k);
    cb.emplace_back(Device::cpu, DType::f32, vals, true, false);
    gb.emplace_back(Device::cuda, DType::f32, vals, true, true);
  }
  for (auto& b : cb) cs.push_back(b.slot);
  for (auto& b : gb) gs.push_back(b.slot);
  ParamTable tc(cpu_ctx(), cs), tg(gpu_ctx(), gs);
  AdamWHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.01;
  h.step = 1;
  auto chain = [&](Ctx& c, const ParamTable& t) {
    Buffer norm = make_poisoned(c.device, DType::f32, {1}), scale = make_poisoned(c.device, DType::f32, {1});
    Buffer flag = make_poisoned(c.device, DType::i32, {1});
    grad_norm(c, t, {norm.t(), scale.t(), flag.t(), 0.5});
    adamw_step(c, {h, scale.t(), flag.t()}, t);
    return to_host_f64(c, scale.t())[0];
  };
  const double sc = chain(cpu_ctx(), tc), sg = chain(gpu_ctx(), tg);
  EXPECT_LT(sc, 1.0);
  EXPECT_NEAR(sg, sc, 1e-6 * sc);
  for (size_t k = 0; k < sizes.size(); ++k)
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gs[k].param), to_host_f64(cpu_ctx(), cs[k].param)), 1e-6) << k;
}

}  // namespace
}  // namespace attnlab::test
