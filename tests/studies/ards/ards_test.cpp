// The ARDS study (studies/ards): the per-layer ramp (alpha_l = (L - l)/L), the information-density
// no-op at model level through the study's own pipeline (greedy tokens equal the baseline's with
// random non-zero controller weights), KL ≈ 0 in monitor mode, diagnostics equal to values
// recomputed from the full maps, seeded sampling, and the plot script drawing the grid from the JSON.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/config/attention_options.h"
#include "core/layers/standard_attention.h"
#include "core/models/weights.h"
#include "models/generate_test_util.h"
#include "studies/ards/run.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;
using ards::Mode;

ModelConfig with_attention(ModelConfig c, const char* json) {
  c.attnlab = nlohmann::ordered_json::parse(std::string("{\"attention\": ") + json + "}");
  return c;
}

// A saved tiny Qwen2 folder (random weights) with `L` layers.
std::string tiny_folder(Ctx& ctx, const std::string& name, int64_t L, uint64_t seed) {
  const std::string dir = ::testing::TempDir() + "attnlab_ards_" + name;
  fs::remove_all(dir);
  TinyShape s = gen_shape();
  s.L = L;
  Model m(tiny_config(ModelArch::qwen2, false, s), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, seed, 2.0);
  save_model(m, ctx, dir);
  return dir;
}

GenerationConfig greedy(int64_t n) {
  GenerationConfig g;
  g.max_new_tokens = n;
  g.do_sample = false;
  return g;
}

TEST(ArdsRamp, ByLayerGivesEachLayerItsAlpha) {
  Ctx& ctx = cpu_ctx();
  TinyShape s = gen_shape();
  s.L = 5;
  Model m(with_attention(tiny_config(ModelArch::qwen2, false, s), R"({"norm": "ramp", "ramp_schedule": "by_layer"})"),
          {Device::cpu, DType::f64, false}, ctx);
  const std::vector<double> a = ards::layer_ramp_alphas(m);
  ASSERT_EQ(a.size(), 5u);
  for (int64_t l = 0; l < 5; ++l) EXPECT_DOUBLE_EQ(a[size_t(l)], double(5 - l) / 5.0) << l;
  // The option's rules: by_layer takes no ramp_alpha and needs norm: ramp.
  AttentionOptions o;
  o.norm = "ramp";
  o.ramp_schedule = "by_layer";
  EXPECT_TRUE(attention_option_problems(o, true, "model.attention.").empty());
  o.ramp_alpha = 0.3;
  ASSERT_EQ(attention_option_problems(o, true, "model.attention.").size(), 1u);
  EXPECT_NE(attention_option_problems(o, true, "model.attention.")[0].second.find("remove ramp_alpha"), std::string::npos);
  o.ramp_alpha.reset();
  o.norm = "softmax";
  ASSERT_EQ(attention_option_problems(o, true, "model.attention.").size(), 1u);
  EXPECT_EQ(attention_option_problems(o, true, "model.attention.")[0].first, "ramp_schedule");
  EXPECT_EQ(attention_options_to_json(AttentionOptions{}).size(), 0u) << "constant is the default, not written";
}

// With one layer, by_layer gives alpha = 1: the ramp is the linear map, so the logits equal a
// norm: linear model's (a check of the schedule through the op, not of the formula's value).
TEST(ArdsRamp, SingleLayerByLayerIsTheLinearMap) {
  Ctx& ctx = cpu_ctx();
  TinyShape s = gen_shape();
  s.L = 1;
  const ModelConfig base = tiny_config(ModelArch::qwen2, false, s);
  Model ramp(with_attention(base, R"({"norm": "ramp", "ramp_schedule": "by_layer"})"), {Device::cpu, DType::f64, false}, ctx);
  Model lin(with_attention(base, R"({"norm": "linear"})"), {Device::cpu, DType::f64, false}, ctx);
  Model soft(base, {Device::cpu, DType::f64, false}, ctx);
  randomize_params(ramp, ctx, 4, 2.0);
  for (Model* m : {&lin, &soft})
    for (const Param& p : m->params())
      from_host_f64(ctx, m->params().at(p.name).value, to_host_f64(ctx, ramp.params().at(p.name).value));
  const std::vector<int32_t> seq = {3, 8, 1, 30, 2, 11, 5};
  const auto r = full_last_logits(ramp, ctx, seq);
  EXPECT_LT(rel_err(r, full_last_logits(lin, ctx, seq)), 1e-12);
  EXPECT_GT(rel_err(r, full_last_logits(soft, ctx, seq)), 1e-4) << "the linear map differs from softmax";
}

// METHODS §4.3 at model level: the study's --optimize (controller=info_density loaded on a
// pretrained folder) with random non-zero controller weights gives the baseline's greedy tokens;
// the controller's output is really non-zero and the KL from softmax is zero to rounding.
TEST(ArdsModel, InfoDensityGreedyTokensEqualTheBaseline) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = tiny_folder(ctx, "optimize", 3, 17);
  auto plain = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::baseline));
  auto ctrl = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::optimize));
  int n = 0;
  for (Param& p : ctrl->params())
    if (p.name.find(".controller.") != std::string::npos) {
      from_host_f64(ctx, p.value, rand_normal(size_t(p.numel()), 0.8, 100 + n++));
    }
  ASSERT_EQ(n, 3 * 4);
  const std::vector<int32_t> prompt = {5, 1, 22, 9, 14};
  const ards::PromptRun a = ards::run_prompt(*plain, ctx, prompt, greedy(12), Mode::baseline, 0.1, 1);
  const ards::PromptRun b = ards::run_prompt(*ctrl, ctx, prompt, greedy(12), Mode::optimize, 1.0, 1);
  EXPECT_EQ(a.generation.tokens, b.generation.tokens);
  EXPECT_TRUE(a.diagnostics.layers.empty()) << "baseline collects nothing";
  ASSERT_EQ(b.diagnostics.layers.size(), 3u);
  double max_abs_a = 0;
  for (const auto& s : b.diagnostics.layers) {
    ASSERT_EQ(s.values.size(), size_t(b.diagnostics.calls));
    ASSERT_EQ(s.records.size(), s.values.size()) << "rate 1 samples every call";
    for (size_t c = 0; c < s.values.size(); ++c) {
      max_abs_a = std::max(max_abs_a, std::fabs(s.values[c]));
      EXPECT_LT(std::fabs(s.records[c].kl), 1e-12) << "layer " << s.layer << " call " << c;
      EXPECT_GT(s.records[c].entropy, 0.0);
    }
  }
  EXPECT_GT(max_abs_a, 1e-3) << "the controller's adjustment must be non-zero for the test to mean anything";
  fs::remove_all(dir);
}

TEST(ArdsModel, MonitorRecordsZeroKlAndTheSoftmaxStatistics) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = tiny_folder(ctx, "monitor", 2, 5);
  auto m = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::monitor));
  const ards::PromptRun r = ards::run_prompt(*m, ctx, {3, 4, 5, 6}, greedy(7), Mode::monitor, 1.0, 2);
  ASSERT_EQ(r.diagnostics.layers.size(), 2u);
  EXPECT_EQ(r.diagnostics.calls, r.generation.stats.decode_steps + 1) << "one call per prefill/decode step";
  for (const auto& s : r.diagnostics.layers)
    for (const auto& rec : s.all) {
      EXPECT_LT(std::fabs(rec.kl), 1e-12);
      EXPECT_GT(rec.variance, 0.0);
      EXPECT_DOUBLE_EQ(s.values[size_t(rec.call)], rec.variance) << "monitor's series is the variance";
    }
  // The linear mode on the same folder is far from softmax.
  auto lin = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::linearize));
  const ards::PromptRun l = ards::run_prompt(*lin, ctx, {3, 4, 5, 6}, greedy(3), Mode::linearize, 1.0, 2);
  EXPECT_GT(l.diagnostics.layers[0].all[1].kl, 1e-4);
  fs::remove_all(dir);
}

// The per-call diagnostics (means over rows of the op's row reductions) equal values recomputed
// from the full maps: the modified map the materialized layer keeps and the softmax of the
// captured pre-softmax scores, visible keys only.
// With unmasked (METHODS §4.4's literal prefill, --linear-unmasked) every row's map spans all T keys
// of the call, later ones included: the recomputation then runs over T keys in every row.
TEST(ArdsModel, DiagnosticsEqualValuesRecomputedFromTheFullMaps) {
  Ctx& ctx = cpu_ctx();
  const std::pair<Mode, bool> cases[] = {{Mode::linearize, false}, {Mode::leramp, false}, {Mode::monitor, false},
                                         {Mode::linearize, true}, {Mode::leramp, true}};
  for (const auto& [mode, unmasked] : cases) {
    SCOPED_TRACE(std::string(ards::mode_file_name(mode)) + (unmasked ? " unmasked" : " visible"));
    TinyShape s = gen_shape();
    s.L = 3;
    ModelConfig cfg = tiny_config(ModelArch::qwen2, false, s);
    nlohmann::ordered_json att = nlohmann::ordered_json::object();
    for (const std::string& kv : ards::attention_overrides(mode, unmasked)) {
      const auto eq = kv.find('=');
      att[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    cfg.attnlab = {{"attention", att}};
    Model m(cfg, {Device::cpu, DType::f64}, ctx);
    randomize_params(m, ctx, 9, 2.0);
    const int64_t B = 1, T = 7, H = cfg.num_heads;
    TokenBatch tb = random_batch(B, T, cfg.vocab_size, 3);
    ProbeSink sink;
    ProbeRequest r = ards::probe_request(mode);
    r.scores = true;
    for (int32_t t = 0; t < T; ++t) r.rows.push_back(t);
    sink.add(r);
    m.plan(ctx, B, T);
    Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids);
    {
      ProbeScope scope(ctx, &sink);
      m.forward(ctx, ids, Tensor(), 0);
    }
    const ards::PromptDiagnostics d =
        ards::collect(sink, mode, 3, ards::layer_ramp_alphas(m), 1.0, 0);
    for (int64_t layer = 0; layer < 3; ++layer) {
      const auto& attn = dynamic_cast<const StandardAttention&>(m.attention(layer));
      const std::vector<double> P = to_host_f64(ctx, attn.probs());  // [1, H, T, T]
      const auto& sc = sink.find("scores", layer).at(0)->values;    // [1, H, T rows, T]
      double kl = 0, ent = 0, var = 0;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) {
          const size_t row = size_t((h * T + t) * T);
          const int64_t n = unmasked ? T : t + 1;
          double mass = 0;
          for (int64_t j = 0; j < T; ++j) mass += j < n ? P[row + size_t(j)] : 0.0;
          EXPECT_NEAR(mass, 1.0, 1e-12) << "row " << t << ": the map sums to 1 over its " << n << " keys";
          if (unmasked && t + 1 < T) EXPECT_GT(P[row + size_t(T - 1)], 0.0) << "row " << t << " sees the last key";
          double mx = -1e300, z = 0, mean = 0;
          for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sc[row + size_t(j)]);
          for (int64_t j = 0; j < n; ++j) z += std::exp(sc[row + size_t(j)] - mx);
          for (int64_t j = 0; j < n; ++j) {
            const double p = P[row + size_t(j)], po = std::exp(sc[row + size_t(j)] - mx) / z;
            kl += po * (std::log(po) - std::log(p));
            if (p > 0) ent -= p * std::log(p);
            mean += p / double(n);
          }
          double v = 0;
          for (int64_t j = 0; j < n; ++j) v += (P[row + size_t(j)] - mean) * (P[row + size_t(j)] - mean);
          var += n > 1 ? v / double(n - 1) : 0.0;
        }
      const double rows = double(H * T);
      const ards::Record& rec = d.layers[size_t(layer)].all.at(0);
      EXPECT_NEAR(rec.kl, kl / rows, 1e-10) << ards::mode_file_name(mode) << " layer " << layer;
      EXPECT_NEAR(rec.entropy, ent / rows, 1e-10) << ards::mode_file_name(mode) << " layer " << layer;
      EXPECT_NEAR(rec.variance, var / rows, 1e-12) << ards::mode_file_name(mode) << " layer " << layer;
      if (mode == Mode::monitor) {
        EXPECT_LT(std::fabs(rec.kl), 1e-12);
      } else {
        EXPECT_GT(rec.kl, 1e-6) << "a modified map differs from softmax";
      }
    }
  }
}

// norm_mask: unmasked is the linear / ramp normalisations' option: refused with softmax (which the
// study's --monitor and --optimize modes keep), and by the study for those modes.
TEST(ArdsModel, UnmaskedPrefillIsALinearAndRampOption) {
  AttentionOptions o;
  o.norm_mask = "unmasked";
  const auto p = attention_option_problems(o, true, "model.attention.");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first, "norm_mask");
  EXPECT_NE(p[0].second.find("set norm: linear or ramp"), std::string::npos) << p[0].second;
  o.norm = "linear";
  EXPECT_TRUE(attention_option_problems(o, true, "model.attention.").empty());
  o.variant = "differential";
  EXPECT_FALSE(attention_option_problems(o, true, "model.attention.").empty()) << "a standard-variant option";
  EXPECT_TRUE(ards::takes_unmasked(Mode::linearize) && ards::takes_unmasked(Mode::leramp));
  EXPECT_FALSE(ards::takes_unmasked(Mode::monitor) || ards::takes_unmasked(Mode::optimize));
  // The decode steps see every cached key either way, so with a one-token prompt (no later key
  // to leak) the unmasked run generates the visible run's tokens.
  Ctx& ctx = cpu_ctx();
  const std::string dir = tiny_folder(ctx, "unmasked", 2, 23);
  auto vis = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::linearize));
  auto unm = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::linearize, true));
  const auto a = ards::run_prompt(*vis, ctx, {7}, greedy(6), Mode::linearize, 1.0, 3);
  const auto b = ards::run_prompt(*unm, ctx, {7}, greedy(6), Mode::linearize, 1.0, 3);
  EXPECT_EQ(a.generation.tokens, b.generation.tokens);
  // A longer prompt: the prefill's first rows now see later keys, so its variance series differs.
  const auto c = ards::run_prompt(*vis, ctx, {7, 3, 19, 4, 11}, greedy(2), Mode::linearize, 1.0, 3);
  const auto d = ards::run_prompt(*unm, ctx, {7, 3, 19, 4, 11}, greedy(2), Mode::linearize, 1.0, 3);
  EXPECT_GT(std::fabs(c.diagnostics.layers[0].values[0] - d.diagnostics.layers[0].values[0]), 1e-9);
  fs::remove_all(dir);
}

TEST(ArdsSampling, SeededDrawsKeepTheRate) {
  int kept = 0, same = 0;
  const int N = 20000;
  for (int i = 0; i < N; ++i) {
    kept += ards::sampled(7, i % 29, i / 29, 0.1);
    same += ards::sampled(7, i % 29, i / 29, 0.1) == ards::sampled(8, i % 29, i / 29, 0.1);
    EXPECT_FALSE(ards::sampled(7, i % 29, i / 29, 0.0));
    EXPECT_TRUE(ards::sampled(7, i % 29, i / 29, 1.0));
  }
  EXPECT_NEAR(double(kept) / N, 0.1, 0.01);
  EXPECT_LT(same, N - 100) << "another seed samples other records";
}

uint32_t be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

// A response that ends inside a UTF-8 character (cut at max_new_tokens, or a byte-level token of a
// real tokenizer) is written with U+FFFD for the broken bytes; before, the JSON writer threw and the
// whole run failed ("invalid UTF-8 byte").
TEST(ArdsFiles, ResponseCutInsideAUtf8CharacterIsWritten) {
  ards::PromptRun r;
  r.prompt = "p";
  r.ids = {1, 2};
  r.generation.texts = {std::string("ok \xE5\x9C")};  // the first two bytes of a 3-byte character
  r.generation.tokens = {{5, 6}};
  r.diagnostics.mode = Mode::baseline;
  const std::string dir = ::testing::TempDir() + "attnlab_ards_utf8";
  fs::remove_all(dir);
  const std::string json = ards::write_prompt_files(dir, 1, r, greedy(2), "m", 0, 0.1);
  std::ifstream f(json);
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(f);
  EXPECT_EQ(j["response"].get<std::string>().rfind("ok ", 0), 0u);
  EXPECT_NE(j["response"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos) << "U+FFFD for the cut bytes";
}

TEST(ArdsFiles, JsonCsvAndThePlotScriptDrawsTheGrid) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = tiny_folder(ctx, "plot", 3, 11);
  auto m = load_model(dir, {Device::cpu, DType::f64, false}, ctx, ards::attention_overrides(Mode::leramp));
  GenerationConfig g = greedy(5);
  ards::PromptRun r = ards::run_prompt(*m, ctx, {2, 7, 9}, g, Mode::leramp, 0.5, 3);
  r.prompt = "test prompt";
  const std::string out = dir + "/out";
  const std::string json = ards::write_prompt_files(out + "/diagnostics", 2, r, g, dir, 3, 0.5);
  std::ifstream f(json);
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(f);
  ASSERT_EQ(j["diagnostics"]["layers"].size(), 3u);
  EXPECT_EQ(j["diagnostics"]["mode"], "linear_ramp");
  for (int l = 0; l < 3; ++l)
    for (double v : j["diagnostics"]["layers"][l]["values"]) EXPECT_DOUBLE_EQ(v, (3.0 - l) / 3.0);
  {
    std::ifstream csv(out + "/diagnostics/prompt_2_linear_ramp.csv");
    std::string line;
    int lines = 0;
    while (std::getline(csv, line)) ++lines;
    EXPECT_EQ(lines, 1 + 3 * int(r.diagnostics.calls));
  }
  if (std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 has no matplotlib (apt-get install python3-matplotlib): the plot is not drawn";
  const std::string cmd = std::string("/usr/bin/python3 ") + ATTNLAB_SOURCE_DIR + "/tools/plot_ards.py --out " + out +
                          "/plots " + json + " >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string png = out + "/plots/prompt_2_linear_ramp_grid.png";
  std::ifstream p(png, std::ios::binary);
  ASSERT_TRUE(p.good()) << png;
  unsigned char head[24];
  p.read(reinterpret_cast<char*>(head), 24);
  // IHDR: 15 x 4·ceil(3/2) inches at dpi 150.
  EXPECT_EQ(be32(head + 16), 15u * 150u);
  EXPECT_EQ(be32(head + 20), 4u * 2u * 150u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace attnlab::test
