// The attention shell's seams: probes (bit-identical outputs with or without a sink; captures equal
// to values recomputed from the full maps; cached generation), score controllers as modules
// (finite differences, the information-density no-op property, temperature changes the
// distribution, generation equals the full forward, save/reload), and parameters added on top of
// pretrained weights (initialised by their rule, listed, a missing pretrained tensor still an error).
#include <cmath>
#include <filesystem>

#include "core/layers/attention_shell.h"
#include "core/layers/standard_attention.h"
#include "core/models/weights.h"
#include "core/probes.h"
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

ModelConfig with_attention(ModelConfig c, const char* json) {
  c.attnlab = nlohmann::ordered_json::parse(std::string("{\"attention\": ") + json + "}");
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

// ---- probes ----------------------------------------------------------------------------------

TEST(Probes, RegisteredOrNotTheOutputsAreBitIdentical) {
  Ctx& ctx = cpu_ctx();
  for (ModelArch arch : {ModelArch::gpt2, ModelArch::qwen3}) {
    Model m(tiny_config(arch, false), {Device::cpu, DType::f64}, ctx);
    randomize_params(m, ctx, 5);
    const int64_t B = 2, T = 7;
    TokenBatch tb = random_batch(B, T, m.config().vocab_size, 9);
    const RunResult plain = run(m, ctx, tb, B, T);
    ProbeSink sink;
    ProbeRequest r;
    r.rows = {0, T - 1};
    r.scores = r.probs = r.entropy = r.kl = r.variance = true;
    r.spans = {{0, 2}, {2, 7}};
    r.positions = {1, T - 1};
    r.hidden = r.attn_out = r.q_proj = true;
    sink.add(r);
    const RunResult probed = run(m, ctx, tb, B, T, &sink);
    EXPECT_EQ(plain.loss, probed.loss);
    EXPECT_EQ(plain.logits, probed.logits);
    EXPECT_EQ(plain.grads, probed.grads);
    // Every layer captured every kind once.
    for (const char* what : {"scores", "probs", "entropy", "kl", "variance", "span_mass", "hidden", "attn_out", "q_proj"})
      EXPECT_EQ(sink.find(what).size(), size_t(m.num_layers())) << what;
  }
}

// Probability rows, entropy, variance and span mass equal values recomputed from the full map
// the materialized layer keeps (StandardAttention::probs), head by head.
TEST(Probes, CapturesEqualValuesRecomputedFromTheFullMaps) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(ModelArch::qwen2, true), {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 21, 2.0);
  const int64_t B = 2, T = 6, H = m.config().num_heads, layer = 1;
  TokenBatch tb = random_batch(B, T, m.config().vocab_size, 4);
  ProbeSink sink;
  ProbeRequest r;
  r.layers = {layer};
  r.rows = {2, T - 1};
  r.probs = r.entropy = r.variance = true;
  r.spans = {{1, 4}};
  sink.add(r);
  run(m, ctx, tb, B, T, &sink);
  const auto& attn = dynamic_cast<const StandardAttention&>(m.attention(layer));
  const std::vector<double> full = to_host_f64(ctx, attn.probs());  // [B, H, T, T]
  ASSERT_EQ(sink.find("probs", layer).size(), 1u);
  EXPECT_TRUE(sink.find("probs", 0).empty()) << "layer 0 was not asked for";
  const auto& probs = sink.find("probs", layer)[0]->values;
  const auto& entropy = sink.find("entropy", layer)[0]->values;
  const auto& variance = sink.find("variance", layer)[0]->values;
  const auto& mass = sink.find("span_mass", layer)[0]->values;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const double* p = &full[size_t(((b * H + h) * T + t) * T)];
        const int64_t n = t + 1;  // causal: visible keys 0..t
        double ent = 0, mean = 0, var = 0, span = 0;
        for (int64_t j = 0; j < n; ++j) {
          if (p[j] > 0) ent -= p[j] * std::log(p[j]);
          mean += p[j] / double(n);
          if (j >= 1 && j < 4) span += p[j];
        }
        for (int64_t j = 0; j < n; ++j) var += (p[j] - mean) * (p[j] - mean) / double(std::max<int64_t>(1, n - 1));
        if (n == 1) var = 0;
        const size_t row = size_t((b * H + h) * T + t);
        EXPECT_NEAR(entropy[row], ent, 1e-12);
        EXPECT_NEAR(variance[row], var, 1e-12);
        EXPECT_NEAR(mass[row], span, 1e-12);
        for (int64_t k = 0; k < 2; ++k)
          if (r.rows[size_t(k)] == t)
            for (int64_t j = 0; j < T; ++j)
              EXPECT_NEAR(probs[size_t(((b * H + h) * 2 + k) * T + j)], p[j], 1e-14) << b << " " << h << " " << t;
      }
}

TEST(Probes, WorkInCachedGenerationOneCallPerStep) {
  Ctx& ctx = cpu_ctx();
  Model m(gen_config({"qwen2", ModelArch::qwen2, true, nullptr}), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 3);
  CachedForward fwd(m, ctx, 1, 4, 7);
  ProbeSink sink;
  ProbeRequest r;
  r.entropy = true;
  r.layers = {0};
  sink.add(r);
  {
    ProbeScope scope(ctx, &sink);
    fwd.prefill(ctx, {{1, 2, 3, 4}});
    fwd.decode(ctx, {5});
    fwd.decode(ctx, {6});
  }
  const auto got = sink.find("entropy", 0);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]->call, 0);
  EXPECT_EQ(got[2]->call, 2);
  EXPECT_EQ(got[0]->shape, (std::vector<int64_t>{1, 4, 4}));  // prefill: [B, H, T]
  EXPECT_EQ(got[1]->shape, (std::vector<int64_t>{1, 4, 1}));  // decode: one query
  // The decode step's entropy equals the last row of a full forward's entropy over the same tokens.
  ProbeSink full;
  full.add(r);
  {
    ProbeScope scope(ctx, &full);
    full_last_logits(m, ctx, {1, 2, 3, 4, 5, 6});
  }
  const auto& all = full.find("entropy", 0)[0]->values;  // [1, 4, 6]
  for (int64_t h = 0; h < 4; ++h) EXPECT_NEAR(got[2]->values[size_t(h)], all[size_t(h * 6 + 5)], 1e-10) << h;
}

TEST(Probes, CommandLineSpellings) {
  ProbeRequest r = parse_probe_request("probs@3:last,-2,0", 10, 4);
  EXPECT_TRUE(r.probs);
  EXPECT_EQ(r.layers, (std::vector<int64_t>{3}));
  EXPECT_EQ(r.rows, (std::vector<int32_t>{9, 8, 0}));
  r = parse_probe_request("span_mass:0-4,4-9", 10, 4);
  ASSERT_EQ(r.spans.size(), 2u);
  EXPECT_EQ(r.spans[1], (std::pair<int32_t, int32_t>{4, 9}));
  EXPECT_TRUE(r.layers.empty());
  EXPECT_TRUE(parse_probe_request("entropy@0,1", 10, 4).entropy);
  EXPECT_HAS(error_of([] { parse_probe_request("prob@3:last", 10, 4); }), "unknown capture 'prob'");
  EXPECT_HAS(error_of([] { parse_probe_request("probs@7:last", 10, 4); }), "layer '7'");
  EXPECT_HAS(error_of([] { parse_probe_request("probs@1:12", 10, 4); }), "outside the 10 tokens");
  EXPECT_HAS(error_of([] { parse_probe_request("hidden@1", 10, 4); }), "needs positions");
  EXPECT_HAS(error_of([] { parse_probe_request("span_mass:4-2", 10, 4); }), "not a key span");
}

// ---- controllers -------------------------------------------------------------------------------

// Controller parameters: random non-zero values so every path is exercised.
void randomize_all(Model& m, Ctx& ctx, uint64_t seed) { randomize_params(m, ctx, seed); }

// (The information-density controller's gradients are exactly zero — the no-op test below — so a
// relative finite-difference error is meaningless for it; the temperature controller is checked
// under every normalisation.)
TEST(Controllers, TemperatureMatchesFiniteDifferencesUnderEveryNormalisation) {
  Ctx& ctx = cpu_ctx();
  for (const char* opts : {R"({"controller": "temperature"})", R"({"controller": "temperature", "norm": "linear"})",
                           R"({"controller": "temperature", "norm": "ramp", "ramp_alpha": 0.4})"}) {
    Model m(with_attention(tiny_config(ModelArch::qwen2, false), opts), {Device::cpu, DType::f64}, ctx);
    randomize_all(m, ctx, 8);
    const int64_t B = 2, T = 5;
    TokenBatch tb = random_batch(B, T, m.config().vocab_size, 2);
    m.plan(ctx, B, T);
    Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids), targets = make_ids(Device::cpu, {B, T}, tb.targets);
    auto loss = [&] { return to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0]; };
    m.params().zero_grads(ctx);
    loss();
    m.backward(ctx);
    auto grads = read_grads(ctx, m);
    std::vector<GradInput> inputs;
    for (Param& p : m.params())
      if (p.name.find(".controller.") != std::string::npos || p.name.find("q_proj") != std::string::npos)
        inputs.push_back({p.name, p.value.ptr<double>(), size_t(p.numel()), &grads.at(p.name)});
    ASSERT_EQ(inputs.size(), 2u * 4u + 4u) << opts;  // 4 controller tensors + q_proj weight, bias per layer
    std::string report;
    EXPECT_LT(fd_check(loss, inputs, 1e-5, 6, &report), 1e-6) << opts << "\n" << report;
  }
}

// METHODS §4.3: a per-row additive constant leaves softmax unchanged — every probability and every
// gradient equal the plain model's, and the controller's own gradients are zero (to rounding).
TEST(Controllers, InfoDensityIsANoOpForAnyWeights) {
  Ctx& ctx = cpu_ctx();
  const ModelConfig base = tiny_config(ModelArch::qwen2, false);
  Model plain(base, {Device::cpu, DType::f64}, ctx);
  Model ctrl(with_attention(base, R"({"controller": "info_density"})"), {Device::cpu, DType::f64}, ctx);
  randomize_all(ctrl, ctx, 31);  // non-zero controller weights
  for (const Param& p : plain.params())
    from_host_f64(ctx, plain.params().at(p.name).value, to_host_f64(ctx, ctrl.params().at(p.name).value));
  const int64_t B = 2, T = 6;
  TokenBatch tb = random_batch(B, T, base.vocab_size, 12);
  const RunResult a = run(plain, ctx, tb, B, T), b = run(ctrl, ctx, tb, B, T);
  EXPECT_NEAR(a.loss, b.loss, 1e-13);
  EXPECT_LT(rel_err(a.logits, b.logits), 1e-13);
  for (const auto& [name, g] : a.grads) EXPECT_LT(rel_err(g, b.grads.at(name)), 1e-10) << name;
  for (const auto& [name, g] : b.grads)
    if (name.find(".controller.") != std::string::npos)
      for (double x : g) EXPECT_LT(std::fabs(x), 1e-12) << name;
  // Greedy generation is the baseline's too.
  GenerationConfig gc;
  gc.max_new_tokens = 6;
  gc.do_sample = false;
  EXPECT_EQ(generate(plain, ctx, {{1, 2, 3}}, gc).tokens, generate(ctrl, ctx, {{1, 2, 3}}, gc).tokens);
}

TEST(Controllers, TemperatureStartsAsTheIdentityAndChangesTheDistributionWhenTrained) {
  Ctx& ctx = cpu_ctx();
  const ModelConfig base = tiny_config(ModelArch::qwen3, true);
  Model plain(base, {Device::cpu, DType::f64}, ctx);
  Model ctrl(with_attention(base, R"({"controller": "temperature"})"), {Device::cpu, DType::f64}, ctx);
  init_weights(ctrl, ctx, 4);
  for (const Param& p : plain.params())
    from_host_f64(ctx, plain.params().at(p.name).value, to_host_f64(ctx, ctrl.params().at(p.name).value));
  const int64_t B = 1, T = 6;
  TokenBatch tb = random_batch(B, T, base.vocab_size, 1);
  const RunResult a = run(plain, ctx, tb, B, T), b = run(ctrl, ctx, tb, B, T);
  EXPECT_EQ(a.logits, b.logits) << "zero-initialised projection: tau = exp(tanh(0)) = 1 exactly";
  const std::string w = "model.layers.0.self_attn.controller.proj.weight";
  ASSERT_TRUE(b.grads.count(w));
  double norm = 0;
  for (double x : b.grads.at(w)) norm += x * x;
  EXPECT_GT(norm, 1e-12) << "the temperature controller's gradient moves it";
  from_host_f64(ctx, ctrl.params().at(w).value, rand_normal(size_t(ctrl.params().at(w).numel()), 0.5, 3));
  const RunResult c = run(ctrl, ctx, tb, B, T);
  EXPECT_GT(rel_err(a.logits, c.logits), 1e-6);
}

TEST(Controllers, ActiveInGenerationLogitsEqualTheFullForward) {
  Ctx& ctx = cpu_ctx();
  for (const char* opts : {R"({"attention": {"controller": "temperature"}})",
                           R"({"attention": {"controller": "info_density", "norm": "linear"}})"}) {
    Model m(gen_config({"ctrl", ModelArch::qwen2, false, opts}), {Device::cpu, DType::f64, false}, ctx);
    randomize_params(m, ctx, 7);
    CachedForward fwd(m, ctx, 1, 3, 6);
    std::vector<int32_t> seq = {4, 9, 2};
    std::vector<double> got = to_host_f64(ctx, fwd.prefill(ctx, {seq}));
    EXPECT_LT(rel_err(got, full_last_logits(m, ctx, seq)), 1e-10) << opts;
    for (int32_t next : {7, 1, 30}) {
      seq.push_back(next);
      got = to_host_f64(ctx, fwd.decode(ctx, {next}));
      EXPECT_LT(rel_err(got, full_last_logits(m, ctx, seq)), 1e-10) << opts << " step " << seq.size();
    }
  }
}

// ---- new parameters on pretrained weights --------------------------------------------------------

TEST(AddedParameters, LoadInitialisesThemByRuleAndTheSavedFolderReloadsAsSaved) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = ::testing::TempDir() + "attnlab_added_params";
  fs::remove_all(dir);
  const ModelConfig base = tiny_config(ModelArch::qwen2, false);
  Model pretrained(base, {Device::cpu, DType::f64}, ctx);
  randomize_params(pretrained, ctx, 2);
  save_model(pretrained, ctx, dir + "/plain");

  // The pretrained folder under a temperature controller: the controller starts at its rule
  // (τ = 1), so the logits are the pretrained model's, bit for bit.
  auto ctrl = load_model(dir + "/plain", {Device::cpu, DType::f64}, ctx, {"controller=temperature"});
  EXPECT_EQ(ctrl->params().at("model.layers.1.self_attn.controller.norm.weight").init.kind, ParamInit::Kind::ones);
  const int64_t B = 1, T = 5;
  TokenBatch tb = random_batch(B, T, base.vocab_size, 6);
  EXPECT_EQ(run(pretrained, ctx, tb, B, T).logits, run(*ctrl, ctx, tb, B, T).logits);

  // Trained controller weights are saved under stable names, config.json records the variant, and
  // the folder reloads as saved (no option needed).
  Param& w = ctrl->params().at("model.layers.0.self_attn.controller.proj.weight");
  from_host_f64(ctx, w.value, rand_normal(size_t(w.numel()), 0.3, 8));
  const RunResult before = run(*ctrl, ctx, tb, B, T);
  save_model(*ctrl, ctx, dir + "/ctrl");
  auto again = load_model(dir + "/ctrl", {Device::cpu, DType::f64}, ctx);
  EXPECT_EQ(again->config().attnlab["attention"]["controller"], "temperature");
  EXPECT_EQ(run(*again, ctx, tb, B, T).logits, before.logits);

  // A missing pretrained tensor is still an error naming it.
  Model untied(base, {Device::cpu, DType::f64}, ctx);
  ModelConfig tied_cfg = base;
  tied_cfg.tie_word_embeddings = true;
  Model tied(tied_cfg, {Device::cpu, DType::f64}, ctx);
  randomize_params(tied, ctx, 1);
  save_model(tied, ctx, dir + "/tied");
  EXPECT_HAS(error_of([&] { load_weights(untied, ctx, dir + "/tied"); }), "lm_head.weight");
  EXPECT_HAS(error_of([&] { load_model(dir + "/plain", {Device::cpu, DType::f64}, ctx, {"controler=temperature"}); }),
             "controler");
  fs::remove_all(dir);
}

// ---- differential attention from the shell ----------------------------------------------------------

// Issue 14: λ vectors follow their module's rule (N(0, 0.1²)), not "1-D parameters are norm weights":
// a freshly initialised differential GPT-2 has a sane gradient and learns like the standard one.
TEST(Differential, FreshGpt2LearnsLikeTheStandardOne) {
  Ctx& ctx = cpu_ctx();
  TinyShape s;
  s.D = 32, s.Hq = 4, s.V = 41, s.P = 16;
  const ModelConfig std_cfg = tiny_config(ModelArch::gpt2, true, s);
  auto train = [&](const ModelConfig& c, double* first_loss, double* grad_norm) {
    Model m(c, {Device::cpu, DType::f64}, ctx);
    init_weights(m, ctx, 3);
    for (const Param& p : m.params())
      if (p.name.find("lambda_q1") != std::string::npos) {
        double sq = 0;
        for (double x : to_host_f64(ctx, p.value)) sq += x * x;
        EXPECT_LT(std::sqrt(sq / double(p.numel())), 0.3) << p.name << " is not N(0, 0.1^2)";
      }
    const int64_t B = 4, T = 12;
    // A learnable pattern: token t+1 = (token t + 1) mod V.
    TokenBatch tb;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) tb.ids.push_back(int32_t((b * 5 + t) % c.vocab_size));
    tb.valid = causal_lm_targets(tb.ids, B, T, tb.targets);
    double last = 0;
    for (int step = 0; step < 60; ++step) {
      RunResult r = run(m, ctx, tb, B, T);
      if (step == 0) {
        *first_loss = r.loss;
        double sq = 0;
        for (const auto& [n, g] : r.grads)
          for (double x : g) sq += x * x;
        *grad_norm = std::sqrt(sq);
      }
      last = r.loss;
      for (Param& p : m.params()) {  // plain SGD
        std::vector<double> v = to_host_f64(ctx, p.value);
        const auto& g = r.grads.at(p.name);
        for (size_t i = 0; i < v.size(); ++i) v[i] -= 0.5 * g[i];
        from_host_f64(ctx, p.value, v);
      }
    }
    return last;
  };
  double f_std = 0, g_std = 0, f_diff = 0, g_diff = 0;
  const double l_std = train(std_cfg, &f_std, &g_std);
  const double l_diff = train(with_attention(std_cfg, R"({"variant": "differential"})"), &f_diff, &g_diff);
  EXPECT_LT(g_diff, 100 * g_std) << "first gradient norm " << g_diff << " vs " << g_std;
  EXPECT_LT(l_std, 0.5 * f_std);
  EXPECT_LT(l_diff, 0.5 * f_diff) << "differential loss " << f_diff << " → " << l_diff;
}

}  // namespace
}  // namespace attnlab::test
