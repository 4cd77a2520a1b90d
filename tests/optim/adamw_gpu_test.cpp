#include "optim/adamw.h"
#include "optim/slot_buffers.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

AdamWHyper hyper_at(int64_t step) {
  AdamWHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.05;
  h.step = step;
  return h;
}

// Prime sizes (partial chunks, partial float4 groups), one below and one above a chunk, one
// spanning many chunks; every third slot misaligned by one element (the scalar path).
const std::vector<int64_t> kSizes = {1, 3, 4093, 4099, 65537, 1000003, 7, 12289};

struct Model {
  std::vector<SlotBuffers> bufs;
  std::vector<ParamSlot> slots;
  Model(Device dev, uint64_t seed) {
    for (size_t k = 0; k < kSizes.size(); ++k) {
      auto vals = random_slot_values(kSizes[k], seed + 17 * k);
      bufs.emplace_back(dev, DType::f32, vals, /*decay=*/k % 2 == 0, /*with_bf16=*/k != 2,
                        /*offset=*/k % 3 == 1 ? 1 : 0);
    }
    for (auto& b : bufs) slots.push_back(b.slot);
  }
};

void new_gradients(Model& m, int64_t step) {
  for (size_t k = 0; k < kSizes.size(); ++k) {
    auto g = rand_normal(size_t(kSizes[k]), 0.02 * double(step), 1000 * step + k);
    Ctx& c = m.slots[k].grad.on_cpu() ? cpu_ctx() : gpu_ctx();
    from_host_f64(c, m.slots[k].grad, g);
  }
}

TEST(AdamWGpu, MultiTensorMatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  Model cpu(Device::cpu, 5), gpu(Device::cuda, 5);
  ParamTable table(gpu_ctx(), gpu.slots);
  for (int64_t step = 1; step <= 3; ++step) {
    new_gradients(cpu, step);
    new_gradients(gpu, step);
    for (auto& s : cpu.slots) adamw_step(cpu_ctx(), {hyper_at(step), {}, {}}, s);
    adamw_step(gpu_ctx(), {hyper_at(step), {}, {}}, table);
  }
  for (size_t k = 0; k < kSizes.size(); ++k) {
    SCOPED_TRACE("slot " + std::to_string(k) + " n=" + std::to_string(kSizes[k]));
    auto p = to_host_f64(gpu_ctx(), gpu.slots[k].param);
    EXPECT_LT(rel_err(p, to_host_f64(cpu_ctx(), cpu.slots[k].param)), 1e-6);
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gpu.slots[k].m), to_host_f64(cpu_ctx(), cpu.slots[k].m)), 1e-6);
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gpu.slots[k].v), to_host_f64(cpu_ctx(), cpu.slots[k].v)), 1e-6);
    if (gpu.slots[k].param_bf16.defined())
      EXPECT_EQ(to_host_f64(gpu_ctx(), gpu.slots[k].param_bf16), round_as(DType::bf16, p));
  }
}

TEST(AdamWGpu, MultiTensorEqualsPerTensorBitwise) {
  ATTNLAB_REQUIRE_GPU();
  Model single(Device::cuda, 9), multi(Device::cuda, 9);
  ParamTable table(gpu_ctx(), multi.slots);
  for (int64_t step = 1; step <= 2; ++step) {
    new_gradients(single, step);
    new_gradients(multi, step);
    for (auto& s : single.slots) adamw_step(gpu_ctx(), {hyper_at(step), {}, {}}, s);
    adamw_step(gpu_ctx(), {hyper_at(step), {}, {}}, table);
  }
  for (size_t k = 0; k < kSizes.size(); ++k) {
    EXPECT_EQ(to_host_f64(gpu_ctx(), single.slots[k].param), to_host_f64(gpu_ctx(), multi.slots[k].param)) << k;
    EXPECT_EQ(to_host_f64(gpu_ctx(), single.slots[k].m), to_host_f64(gpu_ctx(), multi.slots[k].m)) << k;
    EXPECT_EQ(to_host_f64(gpu_ctx(), single.slots[k].v), to_host_f64(gpu_ctx(), multi.slots[k].v)) << k;
    if (multi.slots[k].param_bf16.defined())
      EXPECT_EQ(to_host_f64(gpu_ctx(), single.slots[k].param_bf16),
                to_host_f64(gpu_ctx(), multi.slots[k].param_bf16)) << k;
  }
}

// An element's update must not depend on how its tensor is cut into table entries: ZeRO-1 cuts
// parameters at bucket boundaries, so a 4096-element chunk that the whole tensor updates on the
// full-chunk float4 path is updated in pieces on the tail and scalar paths. (nvcc contracting
// x·y + z into FMAs differently on those paths once made ZeRO-1 differ from plain runs by 1 ulp.)
TEST(AdamWGpu, CuttingATensorIntoPiecesKeepsEveryBit) {
  ATTNLAB_REQUIRE_GPU();
  const int64_t n = 3 * kParamChunk + 101;
  const SlotValues vals = random_slot_values(n, 41);
  SlotBuffers whole(Device::cuda, DType::f32, vals, true, true), cut(Device::cuda, DType::f32, vals, true, true);
  // Cuts at 64-element (ZeRO-1 share) boundaries and one odd cut (a misaligned, scalar piece).
  const std::vector<int64_t> cuts = {0, 1024, kParamChunk + 1024, 2 * kParamChunk + 1024 + 64, 2 * kParamChunk + 3001, n};
  std::vector<ParamSlot> pieces;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    ParamSlot p = cut.slot;
    for (Tensor* t : {&p.param, &p.grad, &p.m, &p.v, &p.param_bf16}) *t = t->slice0(cuts[i], cuts[i + 1]);
    pieces.push_back(p);
  }
  ParamTable whole_table(gpu_ctx(), {whole.slot}), cut_table(gpu_ctx(), pieces);
  Buffer scale = make_tensor(Device::cuda, DType::f32, {1}, {0.37});
  for (int64_t step = 1; step <= 3; ++step) {
    const auto g = rand_normal(size_t(n), 0.02, 500 + step);
    from_host_f64(gpu_ctx(), whole.slot.grad, g);
    from_host_f64(gpu_ctx(), cut.slot.grad, g);
    adamw_step(gpu_ctx(), {hyper_at(step), scale.t(), {}}, whole_table);
    adamw_step(gpu_ctx(), {hyper_at(step), scale.t(), {}}, cut_table);
  }
  EXPECT_EQ(to_host_f64(gpu_ctx(), whole.slot.param), to_host_f64(gpu_ctx(), cut.slot.param));
  EXPECT_EQ(to_host_f64(gpu_ctx(), whole.slot.m), to_host_f64(gpu_ctx(), cut.slot.m));
  EXPECT_EQ(to_host_f64(gpu_ctx(), whole.slot.v), to_host_f64(gpu_ctx(), cut.slot.v));
  EXPECT_EQ(to_host_f64(gpu_ctx(), whole.slot.param_bf16), to_host_f64(gpu_ctx(), cut.slot.param_bf16));
}

// The device scale multiplies the gradients; a non-zero device skip flag leaves everything as it was.
TEST(AdamWGpu, DeviceScaleAndSkip) {
  ATTNLAB_REQUIRE_GPU();
  Model cpu(Device::cpu, 13), gpu(Device::cuda, 13);
  ParamTable table(gpu_ctx(), gpu.slots);
  Buffer scale_gpu = make_tensor(Device::cuda, DType::f32, {1}, {0.3});
  Buffer scale_cpu = make_tensor(Device::cpu, DType::f32, {1}, {0.3});
  Buffer skip = make_ids(Device::cuda, {1}, {1});
  std::vector<std::vector<double>> before;
  for (auto& s : gpu.slots) before.push_back(to_host_f64(gpu_ctx(), s.param));
  adamw_step(gpu_ctx(), {hyper_at(1), scale_gpu.t(), skip.t()}, table);
  for (size_t k = 0; k < kSizes.size(); ++k) {
    EXPECT_EQ(to_host_f64(gpu_ctx(), gpu.slots[k].param), before[k]) << k;
    if (gpu.slots[k].param_bf16.defined()) {  // never written: still the NaN poison
      auto w = to_host_f64(gpu_ctx(), gpu.slots[k].param_bf16);
      EXPECT_TRUE(std::isnan(w[0])) << k;
    }
  }
  from_host_f64(gpu_ctx(), skip.t(), {0});
  adamw_step(gpu_ctx(), {hyper_at(1), scale_gpu.t(), skip.t()}, table);
  for (auto& s : cpu.slots) adamw_step(cpu_ctx(), {hyper_at(1), scale_cpu.t(), {}}, s);
  for (size_t k = 0; k < kSizes.size(); ++k)
    EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), gpu.slots[k].param), to_host_f64(cpu_ctx(), cpu.slots[k].param)),
              1e-6) << k;
}

}  // namespace
}  // namespace attnlab::test
