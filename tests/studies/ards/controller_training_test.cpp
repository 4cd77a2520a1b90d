// Fine-tuning only the score controllers of a frozen model (issue 16, experiments/controllers/):
// the information-density controller cannot change anything (every probability and every gradient
// equal the unmodified model's at every step, its own gradients are zero, so it never moves: METHODS
// §4.3's finding), and the temperature controller's loss falls on a stand-in.
#include <cmath>

#include "core/config/experiment.h"
#include "core/models/weights.h"
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

ModelConfig with_controller(ModelConfig c, const char* kind) {
  c.attnlab = nlohmann::ordered_json::parse(std::string(R"({"attention": {"controller": ")") + kind + "\"}}");
  return c;
}

bool is_controller(const std::string& name) { return name.find(".controller.") != std::string::npos; }

struct Step {
  double loss = 0;
  std::vector<double> logits;
  std::map<std::string, std::vector<double>> grads;
};

Step step(Model& m, Ctx& ctx, const TokenBatch& tb, int64_t B, int64_t T) {
  m.plan(ctx, B, T);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.params().zero_grads(ctx);
  Step s;
  s.loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
  s.logits = m.logits_f64(ctx);
  m.backward(ctx);
  s.grads = read_grads(ctx, m);
  return s;
}

// SGD on the controller's parameters only (the frozen rest is the trainable globs' "*.controller.*").
void sgd_controllers(Model& m, Ctx& ctx, const std::map<std::string, std::vector<double>>& grads, double lr) {
  for (Param& p : m.params()) {
    if (!is_controller(p.name)) continue;
    std::vector<double> v = to_host_f64(ctx, p.value);
    const auto& g = grads.at(p.name);
    for (size_t i = 0; i < v.size(); ++i) v[i] -= lr * g[i];
    from_host_f64(ctx, p.value, v);
  }
}

void copy_shared(Model& dst, Model& src, Ctx& ctx) {
  for (const Param& p : dst.params())
    if (!is_controller(p.name)) from_host_f64(ctx, dst.params().at(p.name).value, to_host_f64(ctx, src.params().at(p.name).value));
}

TEST(ControllerTraining, InfoDensityFineTuningChangesNothing) {
  Ctx& ctx = cpu_ctx();
  const ModelConfig base = tiny_config(ModelArch::qwen2, false);
  Model plain(base, {Device::cpu, DType::f64}, ctx);
  Model ctrl(with_controller(base, "info_density"), {Device::cpu, DType::f64}, ctx);
  randomize_params(ctrl, ctx, 41, 2.0);  // random non-zero controller weights too
  copy_shared(plain, ctrl, ctx);
  const int64_t B = 2, T = 7;
  const TokenBatch tb = random_batch(B, T, base.vocab_size, 5);
  const Step ref = step(plain, ctx, tb, B, T);
  std::map<std::string, std::vector<double>> start;
  for (const Param& p : ctrl.params())
    if (is_controller(p.name)) start[p.name] = to_host_f64(ctx, p.value);
  for (int k = 0; k < 8; ++k) {
    const Step s = step(ctrl, ctx, tb, B, T);
    EXPECT_NEAR(s.loss, ref.loss, 1e-13) << "step " << k;
    EXPECT_LT(rel_err(s.logits, ref.logits), 1e-13) << "step " << k;
    for (const auto& [name, g] : s.grads) {
      if (is_controller(name)) {
        for (double x : g) ASSERT_LT(std::fabs(x), 1e-12) << name << " step " << k;
      } else {
        EXPECT_LT(rel_err(g, ref.grads.at(name)), 1e-10) << name << " step " << k;
      }
    }
    sgd_controllers(ctrl, ctx, s.grads, 1.0);
  }
  for (const auto& [name, v] : start) EXPECT_LT(rel_err(to_host_f64(ctx, ctrl.params().at(name).value), v), 1e-11) << name;
}

TEST(ControllerTraining, TemperatureLossFallsOnAStandIn) {
  Ctx& ctx = cpu_ctx();
  const ModelConfig base = tiny_config(ModelArch::qwen2, false);
  Model frozen(base, {Device::cpu, DType::f64}, ctx);
  randomize_params(frozen, ctx, 13, 2.0);
  Model ctrl(with_controller(base, "temperature"), {Device::cpu, DType::f64}, ctx);
  init_weights(ctrl, ctx, 2);  // controllers at their rule: the identity
  copy_shared(ctrl, frozen, ctx);
  const int64_t B = 3, T = 9;
  TokenBatch tb;  // a learnable pattern: token t+1 = (token t + 3) mod V
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) tb.ids.push_back(int32_t((b * 7 + 3 * t) % base.vocab_size));
  tb.valid = causal_lm_targets(tb.ids, B, T, tb.targets);
  const Step first = step(ctrl, ctx, tb, B, T);
  EXPECT_NEAR(first.loss, step(frozen, ctx, tb, B, T).loss, 1e-13) << "identity controllers: the frozen model";
  std::map<std::string, std::vector<double>> frozen_values;
  for (const Param& p : ctrl.params())
    if (!is_controller(p.name)) frozen_values[p.name] = to_host_f64(ctx, p.value);
  double last = first.loss;
  for (int k = 0; k < 60; ++k) {
    const Step s = step(ctrl, ctx, tb, B, T);
    last = s.loss;
    sgd_controllers(ctrl, ctx, s.grads, 0.3);
  }
  EXPECT_LT(last, first.loss - 0.02) << "loss " << first.loss << " → " << last;
  for (const auto& [name, v] : frozen_values) EXPECT_EQ(to_host_f64(ctx, ctrl.params().at(name).value), v) << name;
}

// The experiment files load and say what the tests above check: only the controllers train.
TEST(ControllerTraining, TheExperimentFilesLoadAndTrainOnlyTheControllers) {
  const std::string dir = std::string(ATTNLAB_SOURCE_DIR) + "/experiments/controllers/";
  for (const char* kind : {"temperature", "info_density"}) {
    std::string file = std::string(kind) + "-qwen2.5-sotu.yaml";
    if (file[4] == '_') file[4] = '-';
    const config::ExperimentConfig cfg = config::load_experiment(dir + file);
    EXPECT_EQ(cfg.model.attention.controller, kind) << file;
    ASSERT_TRUE(cfg.train.trainable.has_value()) << file;
    EXPECT_EQ(*cfg.train.trainable, std::vector<std::string>{"*.controller.*"}) << file;
    EXPECT_EQ(cfg.model.from, "runs/inputs/qwen2.5-tiny") << file << ": the stand-in its header makes";
  }
}

}  // namespace
}  // namespace attnlab::test
