#include <cmath>

#include "optim/adamw.h"
#include "optim/slot_buffers.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// METHODS P12 written out in double, independently of the op: decay, moments, bias-corrected
// moments, eps outside the square root.
void reference_adamw(SlotValues& s, const std::vector<double>& grad, const AdamWHyper& h, bool decay,
                     double scale = 1.0) {
  const double bc1 = 1 - std::pow(h.beta1, double(h.step)), bc2 = 1 - std::pow(h.beta2, double(h.step));
  for (size_t i = 0; i < s.param.size(); ++i) {
    const double g = grad[i] * scale;
    if (decay) s.param[i] *= 1 - h.lr * h.weight_decay;
    s.m[i] = h.beta1 * s.m[i] + (1 - h.beta1) * g;
    s.v[i] = h.beta2 * s.v[i] + (1 - h.beta2) * g * g;
    const double m_hat = s.m[i] / bc1, v_hat = s.v[i] / bc2;
    s.param[i] -= h.lr * m_hat / (std::sqrt(v_hat) + h.eps);
  }
}

SlotValues rounded(DType dt, const SlotValues& s) {
  return {round_as(dt, s.param), round_as(dt, s.grad), round_as(dt, s.m), round_as(dt, s.v)};
}

AdamWHyper hyper_at(int64_t step) {
  AdamWHyper h;
  h.lr = 3e-2;
  h.weight_decay = 0.1;
  h.beta1 = 0.9;
  h.beta2 = 0.99;
  h.eps = 1e-8;
  h.step = step;
  return h;
}

class AdamWCpu : public ::testing::TestWithParam<DType> {};

// Several steps with fresh gradients each step, decay on and off, against the double formula.
TEST_P(AdamWCpu, MatchesDoubleFormulaOverSteps) {
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  const std::vector<int64_t> sizes = {37, 101, 5};
  std::vector<SlotValues> ref;
  std::vector<SlotBuffers> bufs;
  for (size_t k = 0; k < sizes.size(); ++k) {
    ref.push_back(rounded(dt, random_slot_values(sizes[k], 10 * k + 1)));
    bufs.emplace_back(Device::cpu, dt, ref.back(), /*decay=*/k != 1, /*with_bf16=*/false);
  }
  const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
  for (int64_t step = 1; step <= 4; ++step) {
    const AdamWHyper h = hyper_at(step);
    for (size_t k = 0; k < sizes.size(); ++k) {
      auto g = round_as(dt, rand_normal(size_t(sizes[k]), 0.05 * double(step), 100 * step + k));
      from_host_f64(c, bufs[k].slot.grad, g);
      adamw_step(c, {h, Tensor{}, Tensor{}}, bufs[k].slot);
      reference_adamw(ref[k], g, h, k != 1);
      EXPECT_LT(rel_err(to_host_f64(c, bufs[k].slot.param), ref[k].param), tol) << "step " << step << " slot " << k;
      EXPECT_LT(rel_err(to_host_f64(c, bufs[k].slot.m), ref[k].m), tol) << "step " << step << " slot " << k;
      EXPECT_LT(rel_err(to_host_f64(c, bufs[k].slot.v), ref[k].v), tol) << "step " << step << " slot " << k;
    }
  }
}

TEST_P(AdamWCpu, GradScaleAndSkip) {
  const DType dt = GetParam();
  Ctx& c = cpu_ctx();
  SlotValues ref = rounded(dt, random_slot_values(53, 7));
  SlotBuffers b(Device::cpu, dt, ref, true, false);
  Buffer scale = make_tensor(Device::cpu, dt, {1}, {0.37});
  Buffer skip = make_ids(Device::cpu, {1}, {1});
  const AdamWHyper h = hyper_at(3);
  adamw_step(c, {h, scale.t(), skip.t()}, b.slot);
  EXPECT_EQ(to_host_f64(c, b.slot.param), ref.param);
  EXPECT_EQ(to_host_f64(c, b.slot.m), ref.m);
  EXPECT_EQ(to_host_f64(c, b.slot.v), ref.v);

  from_host_f64(c, skip.t(), {0});
  adamw_step(c, {h, scale.t(), skip.t()}, b.slot);
  reference_adamw(ref, ref.grad, h, true, double(dt == DType::f32 ? float(0.37) : 0.37));
  const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
  EXPECT_LT(rel_err(to_host_f64(c, b.slot.param), ref.param), tol);
  EXPECT_LT(rel_err(to_host_f64(c, b.slot.v), ref.v), tol);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AdamWCpu, ::testing::Values(DType::f64, DType::f32),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(AdamW, MultiTensorEqualsPerTensorAndBf16CopyIsRounded) {
  Ctx& c = cpu_ctx();
  const std::vector<int64_t> sizes = {4099, 1, 17, 8192};
  std::vector<SlotBuffers> single, multi;
  std::vector<ParamSlot> slots;
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto vals = rounded(DType::f32, random_slot_values(sizes[k], 31 * k + 5));
    single.emplace_back(Device::cpu, DType::f32, vals, k % 2 == 0, true);
    multi.emplace_back(Device::cpu, DType::f32, vals, k % 2 == 0, true);
  }
  for (auto& m : multi) slots.push_back(m.slot);
  ParamTable table(c, slots);
  for (int64_t step = 1; step <= 2; ++step) {
    for (auto& s : single) adamw_step(c, {hyper_at(step), {}, {}}, s.slot);
    adamw_step(c, {hyper_at(step), {}, {}}, table);
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_EQ(to_host_f64(c, single[k].slot.param), to_host_f64(c, multi[k].slot.param)) << k;
    EXPECT_EQ(to_host_f64(c, single[k].slot.m), to_host_f64(c, multi[k].slot.m)) << k;
    EXPECT_EQ(to_host_f64(c, single[k].slot.v), to_host_f64(c, multi[k].slot.v)) << k;
    auto master = to_host_f64(c, multi[k].slot.param);
    EXPECT_EQ(to_host_f64(c, multi[k].slot.param_bf16), round_as(DType::bf16, master)) << k;
  }
}

TEST(AdamW, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  SlotBuffers b(Device::cpu, DType::f32, random_slot_values(9, 3), true, false);
  EXPECT_THROW(adamw_step(c, {hyper_at(0), {}, {}}, b.slot), Error);
  ParamSlot short_m = b.slot;
  short_m.m = b.slot.m.slice0(0, 8);
  EXPECT_THROW(adamw_step(c, {hyper_at(1), {}, {}}, short_m), Error);
  Buffer scale64 = make_tensor(Device::cpu, DType::f64, {1}, {0.5});
  EXPECT_THROW(adamw_step(c, {hyper_at(1), scale64.t(), {}}, b.slot), Error);
  ParamSlot grad_only;
  grad_only.grad = b.slot.grad;
  EXPECT_THROW(adamw_step(c, {hyper_at(1), {}, {}}, grad_only), Error);
  ParamTable grads(c, {grad_only});
  EXPECT_THROW(adamw_step(c, {hyper_at(1), {}, {}}, grads), Error);
  ParamSlot f64_copy = b.slot;
  Buffer wrong(Device::cpu, DType::f32, {9});
  f64_copy.param_bf16 = wrong.t();  // the working copy must be bf16
  EXPECT_THROW(adamw_step(c, {hyper_at(1), {}, {}}, f64_copy), Error);
}

}  // namespace
}  // namespace attnlab::test
