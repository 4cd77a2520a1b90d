// The two_pass variant on the GPU (f32) against the CPU in double, on odd sizes with live gates
// and a live u: logits, loss and every parameter gradient; generation (prefill and decode, both
// cached_gather modes) against the GPU's own full forward.
#include <cmath>
#include <functional>
#include <tuple>

#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

TinyShape odd_shape() {
  TinyShape s;
  s.D = 48;
  s.L = 2;
  s.Hq = 6;
  s.Hkv = 2;
  s.d = 8;
  s.I = 72;
  s.V = 97;
  s.P = 32;
  return s;
}

ModelConfig gated(ModelArch arch, const char* gather = "self") {
  ModelConfig c = tiny_config(arch, true, odd_shape());
  c.attnlab = nlohmann::ordered_json::parse(std::string(R"({"attention": {"variant": "two_pass", "cached_gather": ")") +
                                            gather + "\"}}");
  return c;
}

// Every parameter random; the gates' fc2 large enough that adj is far from 0 and the u column live.
void randomize(Model& m, Ctx& ctx) {
  randomize_params(m, ctx, 19);
  for (Param& p : m.params())
    if (p.name.find("attn.gate_") != std::string::npos && p.name.find(".fc2.") != std::string::npos)
      from_host_f64(ctx, p.value, rand_normal(size_t(p.numel()), 2.0, 5 + std::hash<std::string>{}(p.name) % 997));
}

TEST(TwoPassGpu, LogitsLossAndEveryGradientMatchTheCpuInDouble) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  for (ModelArch arch : {ModelArch::qwen2, ModelArch::qwen3, ModelArch::gpt2}) {
    Model ref(gated(arch), {Device::cpu, DType::f64}, cpu);
    randomize(ref, cpu);
    Model dev(gated(arch), {Device::cuda, DType::f32}, gpu);
    copy_params(cpu, ref, gpu, dev);
    const int64_t B = 3, T = 13;
    TokenBatch tb = random_batch(B, T, ref.config().vocab_size, 4);
    auto pass = [&](Model& m, Ctx& ctx) {
      m.plan(ctx, B, T);
      Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
      m.params().zero_grads(ctx);
      const double loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
      std::vector<double> logits = m.logits_f64(ctx);
      m.backward(ctx);
      return std::make_tuple(loss, logits, read_grads(ctx, m));
    };
    const auto [l_ref, z_ref, g_ref] = pass(ref, cpu);
    const auto [l_dev, z_dev, g_dev] = pass(dev, gpu);
    EXPECT_NEAR(l_dev, l_ref, 1e-5 * std::fabs(l_ref)) << model_type_name(arch);
    EXPECT_LT(rel_err(z_dev, z_ref), 1e-5) << model_type_name(arch);
    for (const auto& [name, g] : g_ref) EXPECT_LT(rel_err(g_dev.at(name), g), 1e-4) << name;
  }
}

TEST(TwoPassGpu, GenerationEqualsTheFullForwardOnTheGpu) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& cpu = cpu_ctx();
  Ctx& gpu = gpu_ctx();
  for (const char* gather : {"self", "draft_keys"}) {
    Model ref(gated(ModelArch::qwen2, gather), {Device::cpu, DType::f64, false}, cpu);
    randomize(ref, cpu);
    Model m(gated(ModelArch::qwen2, gather), {Device::cuda, DType::f32, false}, gpu);
    copy_params(cpu, ref, gpu, m);
    CachedForward fwd(m, gpu, 1, 5, 9);
    std::vector<int32_t> seq = {4, 9, 2, 11, 60};
    EXPECT_LT(rel_err(to_host_f64(gpu, fwd.prefill(gpu, {seq})), full_last_logits(m, gpu, seq)), 1e-5) << gather;
    if (std::string(gather) != "draft_keys") continue;  // self: decode uses u_t = e_t by design
    for (int32_t next : {7, 1, 30}) {
      seq.push_back(next);
      EXPECT_LT(rel_err(to_host_f64(gpu, fwd.decode(gpu, {next})), full_last_logits(m, gpu, seq)), 1e-5) << gather;
    }
  }
}

}  // namespace
}  // namespace attnlab::test
