// ramp_schedule: by_layer under the differential variant (METHODS §4.5 with §3.2): every layer's
// ramp weight is alpha_l = (L - l)/L, the option table accepts it for differential, and through the
// op a one-layer model's by_layer ramp (alpha = 1) is its linear map, not its softmax.
#include "core/config/attention_options.h"
#include "core/layers/differential_attention.h"
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

ModelConfig differential_gpt2(int64_t L, const char* extra) {
  TinyShape s = gen_shape();
  s.L = L;
  ModelConfig c = tiny_config(ModelArch::gpt2, true, s);
  c.attnlab = nlohmann::ordered_json::parse(std::string(R"({"attention": {"variant": "differential")") + extra + "}}");
  return c;
}

TEST(DifferentialRampSchedule, ByLayerGivesEachLayerItsAlpha) {
  Ctx& ctx = cpu_ctx();
  for (int64_t L : {1, 3, 7}) {
    Model m(differential_gpt2(L, R"(, "norm": "ramp", "ramp_schedule": "by_layer")"), {Device::cpu, DType::f64, false},
            ctx);
    for (int64_t l = 0; l < L; ++l) {
      const auto* d = dynamic_cast<const DifferentialAttention*>(&m.attention(l));
      ASSERT_NE(d, nullptr) << "layer " << l << " is not differential";
      EXPECT_EQ(d->spec().norm, AttnNorm::ramp);
      EXPECT_DOUBLE_EQ(d->spec().ramp_alpha, double(L - l) / double(L)) << "L " << L << " layer " << l;
    }
  }
  // A constant ramp keeps its one alpha in every layer.
  Model c(differential_gpt2(3, R"(, "norm": "ramp", "ramp_alpha": 0.3)"), {Device::cpu, DType::f64, false}, ctx);
  for (int64_t l = 0; l < 3; ++l)
    EXPECT_DOUBLE_EQ(dynamic_cast<const DifferentialAttention&>(c.attention(l)).spec().ramp_alpha, 0.3);
}

TEST(DifferentialRampSchedule, TheOptionTableAcceptsItForDifferential) {
  AttentionOptions o;
  o.variant = "differential";
  o.norm = "ramp";
  o.ramp_schedule = "by_layer";
  EXPECT_TRUE(attention_option_problems(o, false, "model.attention.").empty());
  o.ramp_alpha = 0.5;  // still refused with by_layer, as for standard
  const auto p = attention_option_problems(o, false, "model.attention.");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first, "ramp_alpha");
}

// One layer: alpha_0 = 1, so the by_layer ramp is the linear normalisation of both maps.
TEST(DifferentialRampSchedule, SingleLayerByLayerIsTheLinearMap) {
  Ctx& ctx = cpu_ctx();
  Model ramp(differential_gpt2(1, R"(, "norm": "ramp", "ramp_schedule": "by_layer")"), {Device::cpu, DType::f64, false},
             ctx);
  Model lin(differential_gpt2(1, R"(, "norm": "linear")"), {Device::cpu, DType::f64, false}, ctx);
  Model soft(differential_gpt2(1, ""), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(ramp, ctx, 12, 2.0);
  for (Model* m : {&lin, &soft})
    for (const Param& p : m->params())
      from_host_f64(ctx, m->params().at(p.name).value, to_host_f64(ctx, ramp.params().at(p.name).value));
  const std::vector<int32_t> seq = {3, 8, 1, 30, 2, 11, 5};
  const auto r = full_last_logits(ramp, ctx, seq);
  EXPECT_LT(rel_err(r, full_last_logits(lin, ctx, seq)), 1e-12);
  EXPECT_GT(rel_err(r, full_last_logits(soft, ctx, seq)), 1e-4) << "the linear map differs from softmax";
}

}  // namespace
}  // namespace attnlab::test
