// The two_pass attention variant (METHODS §1.3–1.4): a freshly gated pretrained model is the plain
// one bit for bit (f32 and f64, Qwen2, Qwen3, GPT-2); finite differences of the whole model in
// double; no gradient through the draft / entropy path; generation equals the full forward;
// save/reload; the gate_magnitude probe.
#include <cmath>
#include <filesystem>
#include <functional>

#include "core/layers/two_pass_attention.h"
#include "core/models/weights.h"
#include "core/probes.h"
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

ModelConfig two_pass(ModelConfig c, const char* extra = "") {
  c.attnlab = nlohmann::ordered_json::parse(std::string(R"({"attention": {"variant": "two_pass")") + extra + "}}");
  return c;
}

struct RunResult {
  double loss = 0;
  std::vector<double> logits;
  std::map<std::string, std::vector<double>> grads;
};

RunResult run(Model& m, Ctx& ctx, const TokenBatch& tb, int64_t B, int64_t T, ProbeSink* sink = nullptr) {
  m.plan(ctx, B, T);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.params().zero_grads(ctx);
  RunResult r;
  {
    ProbeScope scope(ctx, sink);
    r.loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
  }
  r.logits = m.logits_f64(ctx);
  m.backward(ctx);
  r.grads = read_grads(ctx, m);
  return r;
}

// The two-pass gates (not the MLP's gate_proj).
bool is_gate(const std::string& name) { return name.find("attn.gate_") != std::string::npos; }
bool u_column_param(const std::string& name) { return is_gate(name) && name.find(".fc1.weight") != std::string::npos; }

// Every parameter random (gates included, so adj ≠ 0); with `u_weight` 0 the u column of every
// fc1 is zeroed: the draft pass then cannot change the output.
void randomize_with_gates(Model& m, Ctx& ctx, uint64_t seed, double u_weight) {
  randomize_params(m, ctx, seed);
  const int64_t D = m.config().hidden_size;
  for (Param& p : m.params()) {
    if (is_gate(p.name) && p.name.find(".fc2.") != std::string::npos)  // large enough that tanh bends
      from_host_f64(ctx, p.value, rand_normal(size_t(p.numel()), 2.0, seed + std::hash<std::string>{}(p.name) % 100000));
    if (!u_column_param(p.name)) continue;
    std::vector<double> v = to_host_f64(ctx, p.value);
    for (int64_t r = 0; r < kGateHidden; ++r) v[size_t(r * (D + 1) + D)] *= u_weight;
    from_host_f64(ctx, p.value, v);
  }
}

const ModelArch kArchs[] = {ModelArch::qwen2, ModelArch::qwen3, ModelArch::gpt2};

// ---- construction, initialisation, names ------------------------------------------------------

TEST(TwoPass, GateParametersHaveTheirNamesShapesAndRules) {
  Ctx& ctx = cpu_ctx();
  Model m(two_pass(tiny_config(ModelArch::qwen2, true)), {Device::cpu, DType::f64}, ctx);
  const int64_t D = m.config().hidden_size;
  for (int64_t l = 0; l < m.num_layers(); ++l)
    for (const char* g : {"q", "k", "v"}) {
      const std::string p = "model.layers." + std::to_string(l) + ".self_attn.gate_" + g;
      EXPECT_EQ(m.params().at(p + ".fc1.weight").shape, (std::vector<int64_t>{16, D + 1}));
      EXPECT_EQ(m.params().at(p + ".fc1.bias").shape, (std::vector<int64_t>{16}));
      EXPECT_EQ(m.params().at(p + ".fc2.weight").shape, (std::vector<int64_t>{D, 16}));
      EXPECT_EQ(m.params().at(p + ".fc2.bias").shape, (std::vector<int64_t>{D}));
      EXPECT_EQ(m.params().at(p + ".fc1.weight").init.kind, ParamInit::Kind::uniform);
      EXPECT_DOUBLE_EQ(m.params().at(p + ".fc1.weight").init.stddev, 1.0 / std::sqrt(double(D + 1)));
      EXPECT_EQ(m.params().at(p + ".fc2.weight").init.kind, ParamInit::Kind::zeros);
      EXPECT_EQ(m.params().at(p + ".fc2.bias").init.kind, ParamInit::Kind::zeros);
      EXPECT_TRUE(m.params().at(p + ".fc1.weight").init.added);
    }
}

// METHODS §1.3: loading a plain pretrained folder under two_pass initialises the gates (fc1
// uniform, fc2 zero) and gives the plain model's logits bit for bit, in f32 and f64, for every
// architecture; the gates' gradients are live (fc2 moves), the other gradients equal the plain ones.
TEST(TwoPass, FreshlyGatedPretrainedModelIsThePlainOneBitForBit) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = ::testing::TempDir() + "attnlab_two_pass_fresh";
  for (ModelArch arch : kArchs)
    for (DType dt : {DType::f32, DType::f64}) {
      fs::remove_all(dir);
      const ModelConfig base = tiny_config(arch, true);
      Model plain(base, {Device::cpu, dt}, ctx);
      randomize_params(plain, ctx, 3);
      save_model(plain, ctx, dir);
      auto gated = load_model(dir, {Device::cpu, dt}, ctx, {"variant=two_pass"});
      const std::string w1 = "model.layers.1.self_attn.gate_k.fc1.weight";
      const std::string g1 = arch == ModelArch::gpt2 ? "transformer.h.1.attn.gate_k.fc1.weight" : w1;
      const std::vector<double> fc1 = to_host_f64(ctx, gated->params().at(g1).value);
      const double bound = 1.0 / std::sqrt(double(base.hidden_size + 1));
      double sum_abs = 0;
      for (double x : fc1) {
        EXPECT_LE(std::fabs(x), bound);
        sum_abs += std::fabs(x);
      }
      EXPECT_GT(sum_abs / double(fc1.size()), 0.3 * bound) << "fc1 is drawn, not zero";
      const std::string g0 = arch == ModelArch::gpt2 ? "transformer.h.0.attn.gate_q.fc1.weight"
                                                     : "model.layers.0.self_attn.gate_q.fc1.weight";
      EXPECT_NE(to_host_f64(ctx, gated->params().at(g0).value), fc1) << "each gate draws its own values";

      const int64_t B = 2, T = 7;
      TokenBatch tb = random_batch(B, T, base.vocab_size, 5);
      const RunResult a = run(plain, ctx, tb, B, T), b = run(*gated, ctx, tb, B, T);
      EXPECT_EQ(a.logits, b.logits) << model_type_name(arch) << " " << dtype_name(dt);
      EXPECT_EQ(a.loss, b.loss);
      const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
      for (const auto& [name, g] : a.grads) EXPECT_LT(rel_err(g, b.grads.at(name)), tol) << name;
      double fc2_norm = 0;
      for (const auto& [name, g] : b.grads)
        if (is_gate(name) && name.find(".fc2.weight") != std::string::npos)
          for (double x : g) fc2_norm += x * x;
      EXPECT_GT(fc2_norm, 1e-12) << "the zero-initialised fc2 gets a gradient";
    }
  fs::remove_all(dir);
}

// ---- gradients ---------------------------------------------------------------------------------

// With the u column of every fc1 zeroed the draft pass cannot change the loss, so the analytic
// gradient (which drops the draft path by design) must be the true one: every parameter kind.
TEST(TwoPass, WholeModelMatchesFiniteDifferencesInDouble) {
  Ctx& ctx = cpu_ctx();
  for (ModelArch arch : kArchs) {
    Model m(two_pass(tiny_config(arch, false)), {Device::cpu, DType::f64}, ctx);
    randomize_with_gates(m, ctx, 11, 0.0);
    const int64_t B = 2, T = 5;
    TokenBatch tb = random_batch(B, T, m.config().vocab_size, 4);
    m.plan(ctx, B, T);
    Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids), targets = make_ids(Device::cpu, {B, T}, tb.targets);
    auto loss = [&] { return to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0]; };
    m.params().zero_grads(ctx);
    loss();
    m.backward(ctx);
    auto grads = read_grads(ctx, m);
    std::vector<GradInput> inputs;
    for (Param& p : m.params()) {
      if (u_column_param(p.name)) continue;  // its u column is pinned at 0 (checked below instead)
      inputs.push_back({p.name, p.unpadded(p.value).ptr<double>(), size_t(p.unpadded(p.value).numel()),
                        &grads.at(p.name)});
    }
    std::string report;
    const double err = fd_check(loss, inputs, 1e-5, 5, &report);
    EXPECT_LT(err, 1e-6) << model_type_name(arch) << "\n" << report;
    record_fd_error("two_pass (whole model)", err);
  }
}

// A one-layer model with live u: the parameters downstream of the draft (gates, v/o projections,
// MLP, final norm) match finite differences; the q/k projections, the input norm and the embedding
// feed the draft too, and there the analytic gradient differs from the total derivative by exactly
// what the draft path would add: it carries none of it (METHODS §1.4).
TEST(TwoPass, NoGradientFlowsThroughTheDraftAndEntropyPath) {
  Ctx& ctx = cpu_ctx();
  TinyShape s;
  s.L = 1;
  Model m(two_pass(tiny_config(ModelArch::qwen2, false, s)), {Device::cpu, DType::f64}, ctx);
  // A u column 3x its drawn size: the draft moves the loss visibly while the gates stay off tanh's
  // flat tails (at 40x they saturate and every gate gradient is ~0, which finite differences
  // cannot resolve).
  randomize_with_gates(m, ctx, 21, 3.0);
  const int64_t B = 2, T = 6;
  TokenBatch tb = random_batch(B, T, m.config().vocab_size, 8);
  m.plan(ctx, B, T);
  Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids), targets = make_ids(Device::cpu, {B, T}, tb.targets);
  auto loss = [&] { return to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0]; };
  m.params().zero_grads(ctx);
  loss();
  m.backward(ctx);
  auto grads = read_grads(ctx, m);
  auto inputs_of = [&](const std::function<bool(const std::string&)>& pick) {
    std::vector<GradInput> in;
    for (Param& p : m.params())
      if (pick(p.name))
        in.push_back({p.name, p.unpadded(p.value).ptr<double>(), size_t(p.unpadded(p.value).numel()), &grads.at(p.name)});
    return in;
  };
  const auto downstream = [](const std::string& n) {
    return is_gate(n) || n.find("v_proj") != std::string::npos || n.find("o_proj") != std::string::npos ||
           n.find("mlp") != std::string::npos || n.find("post_attention") != std::string::npos ||
           n == "model.norm.weight";
  };
  std::string report;
  // 1e-5, not 1e-6: with u live some gate rows sit on tanh's tails, where the gradients are small
  // enough that the central difference's roundoff shows (3e-6 measured; a wrong gradient is O(1)).
  EXPECT_LT(fd_check(loss, inputs_of(downstream), 1e-5, 6, &report), 1e-5) << report;

  // The draft's share is real in the forward: the total derivative of q_proj (FD) differs from the
  // analytic gradient, which leaves it out.
  report.clear();
  const double q_err = fd_check(loss, inputs_of([](const std::string& n) { return n.find("q_proj.weight") != std::string::npos; }),
                                1e-5, 12, &report);
  EXPECT_GT(q_err, 1e-4) << "the draft path must move the loss (else this test proves nothing)\n" << report;
  // And it is exactly the draft's share: zeroing the u column leaves the analytic q_proj gradient as
  // the total derivative (checked in WholeModelMatchesFiniteDifferencesInDouble), and the gates'
  // input gradient has no u column — the op has no du output at all (core/ops/gate_mlp.h).
}

// ---- generation ----------------------------------------------------------------------------------

// The prefill runs the draft gather over the prompt (the full forward's computation); a decode
// step uses u_t = e_t (cached_gather: self), or with cached_gather: draft_keys the draft attention
// over the layer's cached draft keys and entropies, which equals the full forward at every step.
TEST(TwoPass, ForwardCachedEqualsTheFullForward) {
  Ctx& ctx = cpu_ctx();
  for (const char* mode : {"self", "draft_keys"})
    for (const char* mask : {"causal", "none"}) {
      const std::string opts = std::string(R"({"attention": {"variant": "two_pass", "cached_gather": ")") + mode +
                               R"(", "draft_mask": ")" + mask + "\"}}";
      Model m(gen_config({"two_pass", ModelArch::qwen2, true, opts.c_str()}), {Device::cpu, DType::f64, false}, ctx);
      randomize_with_gates(m, ctx, 7, 5.0);
      CachedForward fwd(m, ctx, 1, 4, 8);
      std::vector<int32_t> seq = {4, 9, 2, 11};
      std::vector<double> got = to_host_f64(ctx, fwd.prefill(ctx, {seq}));
      EXPECT_LT(rel_err(got, full_last_logits(m, ctx, seq)), 1e-10) << mode << " " << mask << " prefill";
      for (int32_t next : {7, 1, 30}) {
        seq.push_back(next);
        got = to_host_f64(ctx, fwd.decode(ctx, {next}));
        const double err = rel_err(got, full_last_logits(m, ctx, seq));
        // draft_keys with no mask: the full forward's earlier tokens see later ones, a cache cannot.
        if (std::string(mode) == "draft_keys" && std::string(mask) == "causal") {
          EXPECT_LT(err, 1e-10) << mode << " step " << seq.size();
        } else if (std::string(mode) == "self") {
          EXPECT_GT(err, 1e-8) << "u_t = e_t differs from the gathered u (else the mode is not exercised)";
        }
      }
    }
}

// With the u column zeroed, u is irrelevant and every cached step equals the full forward in the
// self mode too: the gated pass and its KV cache are right, only u differs by design.
TEST(TwoPass, SelfModeDecodeIsTheFullForwardWhenUIsUnused) {
  Ctx& ctx = cpu_ctx();
  Model m(gen_config({"two_pass", ModelArch::qwen3, false, R"({"attention": {"variant": "two_pass"}})"}),
          {Device::cpu, DType::f64, false}, ctx);
  randomize_with_gates(m, ctx, 9, 0.0);
  CachedForward fwd(m, ctx, 1, 3, 7);
  std::vector<int32_t> seq = {5, 3, 8};
  EXPECT_LT(rel_err(to_host_f64(ctx, fwd.prefill(ctx, {seq})), full_last_logits(m, ctx, seq)), 1e-10);
  for (int32_t next : {2, 13, 6}) {
    seq.push_back(next);
    EXPECT_LT(rel_err(to_host_f64(ctx, fwd.decode(ctx, {next})), full_last_logits(m, ctx, seq)), 1e-10);
  }
}

// ---- save / reload -------------------------------------------------------------------------------

TEST(TwoPass, TrainedGatesSaveAndReloadWithIdenticalLogits) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = ::testing::TempDir() + "attnlab_two_pass_save";
  fs::remove_all(dir);
  Model m(two_pass(tiny_config(ModelArch::qwen2, true), R"(, "draft_mask": "none")"), {Device::cpu, DType::f64}, ctx);
  randomize_with_gates(m, ctx, 13, 3.0);
  const int64_t B = 2, T = 6;
  TokenBatch tb = random_batch(B, T, m.config().vocab_size, 3);
  const RunResult before = run(m, ctx, tb, B, T);
  save_model(m, ctx, dir);
  auto again = load_model(dir, {Device::cpu, DType::f64}, ctx);
  EXPECT_EQ(again->config().attnlab["attention"]["variant"], "two_pass");
  EXPECT_EQ(again->config().attnlab["attention"]["draft_mask"], "none");
  for (const Param& p : m.params())
    if (is_gate(p.name)) {
      EXPECT_EQ(to_host_f64(ctx, again->params().at(p.name).value), to_host_f64(ctx, p.value)) << p.name;
    }
  EXPECT_EQ(run(*again, ctx, tb, B, T).logits, before.logits);
  fs::remove_all(dir);
}

// ---- probe ---------------------------------------------------------------------------------------

TEST(TwoPass, GateMagnitudeProbeInTrainingAndGeneration) {
  Ctx& ctx = cpu_ctx();
  Model m(gen_config({"two_pass", ModelArch::qwen2, true, R"({"attention": {"variant": "two_pass"}})"}),
          {Device::cpu, DType::f64, false}, ctx);
  randomize_with_gates(m, ctx, 17, 2.0);
  const int64_t D = m.config().hidden_size;
  ProbeSink sink;
  ProbeRequest r;
  r.gates = true;
  sink.add(r);
  const std::vector<int32_t> seq = {3, 8, 1, 5};
  const std::vector<double> plain_logits = full_last_logits(m, ctx, seq);
  std::vector<double> probed_logits;
  {
    ProbeScope scope(ctx, &sink);
    probed_logits = full_last_logits(m, ctx, seq);
  }
  EXPECT_EQ(plain_logits, probed_logits) << "probing changes nothing";
  const auto found = sink.find("gate_magnitude");
  ASSERT_EQ(found.size(), size_t(m.num_layers()));
  std::vector<Capture> full;  // copies: the sink is cleared below
  for (const Capture* c : found) full.push_back(*c);
  for (const Capture* c : found) {
    ASSERT_EQ(c->shape, (std::vector<int64_t>{1, 4}));
    for (double v : c->values) {
      EXPECT_GT(v, 1e-3);
      EXPECT_LE(v, 0.2 * std::sqrt(double(D)));  // ‖0.2·tanh(·)‖ over D entries
    }
  }
  // Generation: the prefill's capture equals the full forward's (same draft gather), and every
  // decode step adds one [1, 1] capture per layer.
  sink.clear();
  {
    ProbeScope scope(ctx, &sink);
    CachedForward fwd(m, ctx, 1, 4, 7);
    fwd.prefill(ctx, {seq});
    fwd.decode(ctx, {2});
  }
  const auto gen = sink.find("gate_magnitude");
  ASSERT_EQ(gen.size(), size_t(2 * m.num_layers()));
  for (const Capture* c : gen) {
    if (c->call == 0) {
      const Capture* ref = nullptr;
      for (const Capture& f : full)
        if (f.layer == c->layer) ref = &f;
      ASSERT_NE(ref, nullptr);
      ASSERT_EQ(c->values.size(), ref->values.size());
      for (size_t i = 0; i < c->values.size(); ++i) EXPECT_NEAR(c->values[i], ref->values[i], 1e-12);
    } else {
      EXPECT_EQ(c->shape, (std::vector<int64_t>{1, 1}));
      EXPECT_GT(c->values[0], 1e-3);
    }
  }
}

}  // namespace
}  // namespace attnlab::test
