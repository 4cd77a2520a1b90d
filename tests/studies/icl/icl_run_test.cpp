// The ICL study's pipeline on a tiny Qwen3-shaped stand-in (studies/icl/icl_run.h): the whole
// protocol end to end with its JSON keys and captures (metrics recomputed here from the
// safetensors file), KV-only fine-tuning leaving every other weight bit-identical, batched
// prediction equal to one prompt at a time and to a plain forward, captures equal to a plain
// forward's probes, and seed selection.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/io/safetensors.h"
#include "core/probes.h"
#include "data/asset_cache.h"
#include "studies/icl/icl_report.h"
#include "studies/icl/icl_run.h"
#include "studies/icl/icl_test_util.h"
#include "studies/icl/py_random.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

bool is_kv(const std::string& name) {
  return name.find(".k_proj.") != std::string::npos || name.find(".v_proj.") != std::string::npos;
}

// h / (|h| + eps), in double.
std::vector<double> unit(const std::vector<double>& h, double eps) {
  double n = 0;
  for (double v : h) n += v * v;
  n = std::sqrt(n) + eps;
  std::vector<double> u(h.size());
  for (size_t i = 0; i < h.size(); ++i) u[i] = h[i] / n;
  return u;
}

double cos_sim(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return ab / (std::max(std::sqrt(aa), 1e-8) * std::max(std::sqrt(bb), 1e-8));
}

TEST(IclRun, WholeProtocolEndToEndWritesTheKeysAndRecomputableCaptures) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const auto t0 = std::chrono::steady_clock::now();
  ScratchDir dir;
  const IclStandIn s = make_icl_standin(dir.path, 3, 5);
  icl::RunParts all;
  const nlohmann::ordered_json j = icl::run_icl(s.yaml, {}, all, Device::cpu, DType::f32, nullptr);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 60.0);
  const int64_t L = 2, N = 5, D = 32;
  for (const char* key : {"Rec2FTP", "Rec2FT_seed", "SimAOU", "RandomSimAOU", "SimAM", "ZSL_SimAM", "kendall",
                          "random_kendall", "ZSL_accuracy", "ICL_accuracy", "FT_accuracy", "per_layer", "correct_idx",
                          "phase_seconds", "demonstration_indices", "captures"})
    EXPECT_TRUE(j.contains(key)) << key;
  // The demonstrations are CPython's random.sample(range(24), 3) after random.seed(0).
  EXPECT_EQ(j["demonstration_indices"].get<std::vector<int64_t>>(), icl::demonstration_indices(24, 3, 0));
  for (const char* a : {"ZSL", "ICL", "FT"})
    EXPECT_NEAR(j[std::string(a) + "_accuracy"].get<double>(), double(j["correct_idx"][a].size()) / double(N), 1e-12) << a;
  const auto& pl = j["per_layer"];
  EXPECT_EQ(pl["SimAOU"].size(), size_t(L + 1));  // HF's L+1 hidden states
  EXPECT_EQ(pl["SimAM"].size(), size_t(L));
  EXPECT_EQ(pl["kendall"].size(), size_t(L));
  EXPECT_EQ(pl["random_kendall"].size(), size_t(L));
  EXPECT_EQ(j["finetune"]["kv_tensors_changed"].get<int64_t>(), 2 * L);
  EXPECT_TRUE(j["finetune"]["frozen_tensors_changed"].empty());
  EXPECT_EQ(j["finetune"]["steps"].get<int64_t>(), 3);  // one epoch over k = 3 demonstrations, batch 1
  for (const char* phase : {"load", "predict_before_ft", "features_before_ft", "finetune", "predict_after_ft",
                            "features_after_ft", "metrics", "outputs", "total"})
    EXPECT_TRUE(j["phase_seconds"].contains(phase)) << phase;

  // SimAOU again from the raw vectors, by the formula: the file is enough to recompute it.
  const SafetensorsFile f = SafetensorsFile::open(j["captures"].get<std::string>());
  const std::vector<double> hz = read_tensor_f64(f, "hidden/zsl"), hi = read_tensor_f64(f, "hidden/icl"),
                            hf = read_tensor_f64(f, "hidden/ft");
  ASSERT_EQ(hz.size(), size_t(N * (L + 1) * D));
  double mean = 0;
  for (int64_t l = 0; l <= L; ++l) {
    double sum = 0;
    for (int64_t t = 0; t < N; ++t) {
      auto vec = [&](const std::vector<double>& h) {
        const auto b = h.begin() + (t * (L + 1) + l) * D;
        return unit(std::vector<double>(b, b + D), 1e-5);
      };
      const std::vector<double> z = vec(hz), i = vec(hi), ft = vec(hf);
      std::vector<double> di(D), df(D);
      for (int64_t k = 0; k < D; ++k) di[size_t(k)] = i[size_t(k)] - z[size_t(k)], df[size_t(k)] = ft[size_t(k)] - z[size_t(k)];
      sum += cos_sim(di, df);
    }
    EXPECT_NEAR(pl["SimAOU"][size_t(l)].get<double>(), sum / double(N), 1e-6) << "layer " << l;
    if (l >= 1) mean += sum / double(N) / double(L);  // the embedding state is left out by default
  }
  EXPECT_NEAR(j["SimAOU"].get<double>(), mean, 1e-6);
  // The embedding state's delta is identically zero: its SimAOU is 0.
  EXPECT_EQ(pl["SimAOU"][0].get<double>(), 0.0);

  // Kendall again from qd, q_test and the ICL probabilities.
  const std::vector<double> qd = read_tensor_f64(f, "kendall/qd"), qt = read_tensor_f64(f, "q_test"),
                            pr = read_tensor_f64(f, "kendall/icl_probs");
  const int64_t W = 4 * 8, Ld = j["kendall_Ld"].get<int64_t>();
  ASSERT_EQ(qd.size(), size_t(L * Ld * W));
  for (int64_t l = 0; l < L; ++l) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t t = 0; t < N; ++t) {
      std::vector<double> ip(static_cast<size_t>(Ld)), a(static_cast<size_t>(Ld));
      for (int64_t p = 0; p < Ld; ++p) {
        for (int64_t w = 0; w < W; ++w) ip[size_t(p)] += qd[size_t((l * Ld + p) * W + w)] * qt[size_t((t * L + l) * W + w)];
        a[size_t(p)] = pr[size_t((t * L + l) * Ld + p)];
      }
      const double tau = icl::kendall_tau_b(ip, a);
      if (std::isfinite(tau)) sum += tau, ++n;
    }
    EXPECT_NEAR(pl["kendall"][size_t(l)].get<double>(), n ? sum / double(n) : 0.0, 1e-5) << "layer " << l;
  }
  // The probabilities are post-softmax and summed over 4 heads on a prefix: within (0, 4].
  for (double p : pr) EXPECT_TRUE(p > 0 && p <= 4.0 + 1e-6) << p;
}

TEST(IclRun, KvOnlyFineTuningLeavesEveryOtherWeightBitIdentical) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  ScratchDir dir;
  const IclStandIn s = make_icl_standin(dir.path, 5, 3);
  const config::ExperimentConfig cfg = icl::load_icl_experiment(s.yaml, {});
  const icl::IclConfig& c = cfg.analysis.as<icl::IclConfig>();
  const icl::IclData d = icl::load_icl_data(c);
  Ctx& ctx = cpu_ctx();
  auto base = load_model(s.model, {Device::cpu, DType::f32, false}, ctx);
  const auto before = param_values(ctx, *base);
  const std::vector<icl::SstRecord> demos = icl::select_records(d.train, icl::demonstration_indices(24, 5, 0));
  auto trainer = icl::make_finetuner(s.yaml, {}, c, demos, nullptr);
  trainer->run();
  const auto after = param_values(trainer->ctx(), trainer->model());
  ASSERT_EQ(before.size(), after.size());
  int64_t kv = 0;
  for (const auto& [name, values] : before) {
    if (is_kv(name)) {
      EXPECT_NE(values, after.at(name)) << name << " should have trained";
      ++kv;
    } else {
      EXPECT_EQ(values, after.at(name)) << name << " is frozen but changed";
    }
  }
  EXPECT_EQ(kv, 4);  // 2 layers x {k_proj, v_proj}; Qwen3 has no biases
  // The PAPER recipe: SGD on the label tokens, the same invariant; its first loss is the base model's
  // cross-entropy of the label tokens alone (computed here from a plain forward's logits).
  auto sgd = load_model(s.model, {Device::cpu, DType::f32, true}, ctx);
  const std::vector<double> losses = icl::sgd_kv_finetune(*sgd, ctx, cached_tokenizer("qwen3"), d.task, demos, 0.5);
  ASSERT_EQ(losses.size(), 5u);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l) && l > 0) << l;
  {
    const data::Tokenizer& tok = cached_tokenizer("qwen3");
    const std::vector<int32_t> ids = tok.encode(icl::ft_record_text(d.task, demos[0]));
    const int64_t T = int64_t(ids.size()), P = int64_t(tok.encode(icl::query_prompt("", demos[0].text)).size());
    Buffer ids_dev(Device::cpu, DType::i32, {1, T});
    from_host_f64(ctx, ids_dev.t(), std::vector<double>(ids.begin(), ids.end()));
    base->plan(ctx, 1, T);
    base->forward(ctx, ids_dev, Tensor(), 0);
    const std::vector<double> logits = base->logits_f64(ctx);
    const int64_t V = base->vocab();
    double ce = 0;
    for (int64_t t = P - 1; t + 1 < T; ++t) {
      const double* row = logits.data() + t * V;
      double mx = row[0], z = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, row[v]);
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      ce += std::log(z) + mx - row[ids[size_t(t + 1)]];
    }
    EXPECT_NEAR(losses[0], ce / double(T - P), 1e-4);
  }
  const auto sgd_after = param_values(ctx, *sgd);
  for (const auto& [name, values] : before) {
    if (is_kv(name)) EXPECT_NE(values, sgd_after.at(name)) << name << " should have trained";
    else EXPECT_EQ(values, sgd_after.at(name)) << name << " is frozen but changed";
  }
}

TEST(IclRun, BatchedPredictionEqualsOnePromptAtATimeAndAPlainForward) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  ScratchDir dir;
  const IclStandIn s = make_icl_standin(dir.path, 2, 7);
  const config::ExperimentConfig cfg = icl::load_icl_experiment(s.yaml, {});
  const icl::IclData d = icl::load_icl_data(cfg.analysis.as<icl::IclConfig>());
  const data::Tokenizer& tok = cached_tokenizer("qwen3");
  Ctx& ctx = cpu_ctx();
  auto m = load_model(s.model, {Device::cpu, DType::f32, false}, ctx);
  const std::string context = icl::icl_context(d.task, icl::select_records(d.train, icl::demonstration_indices(24, 2, 0)));
  const std::vector<std::string> prompts = icl::icl_prompts(context, d.eval);  // lengths differ: padding matters
  for (bool scoring : {false, true}) {
    const icl::Prediction b3 = icl::predict(*m, ctx, tok, d.task, prompts, d.eval, 3, scoring);
    const icl::Prediction b1 = icl::predict(*m, ctx, tok, d.task, prompts, d.eval, 1, scoring);
    EXPECT_EQ(b3.token, b1.token);
    EXPECT_EQ(b3.correct, b1.correct);
  }
  // Label scoring against the training forward's logits of the last position.
  const icl::Prediction p = icl::predict(*m, ctx, tok, d.task, prompts, d.eval, 4, true);
  const std::vector<int32_t> labels = icl::label_first_tokens(tok, d.task);
  ASSERT_EQ(labels.size(), 2u);
  EXPECT_NE(labels[0], labels[1]);
  for (size_t t = 0; t < prompts.size(); ++t) {
    const std::vector<int32_t> ids = tok.encode(prompts[t]);
    const int64_t T = int64_t(ids.size());
    Buffer ids_dev(Device::cpu, DType::i32, {1, T});
    from_host_f64(ctx, ids_dev.t(), std::vector<double>(ids.begin(), ids.end()));
    m->plan(ctx, 1, T);
    m->forward(ctx, ids_dev, Tensor(), 0);
    const std::vector<double> logits = m->logits_f64(ctx);
    const double* last = logits.data() + (T - 1) * m->vocab();
    const int best = last[labels[1]] > last[labels[0]] ? 1 : 0;
    EXPECT_EQ(p.token[t], labels[size_t(best)]) << "row " << t;
    EXPECT_EQ(p.correct[t], best == d.eval[t].label) << "row " << t;
    // Greedy: the argmax over the whole vocabulary.
    const icl::Prediction g = icl::predict(*m, ctx, tok, d.task, {prompts[t]}, std::span(d.eval).subspan(t, 1), 1, false);
    EXPECT_EQ(g.token[0], int32_t(std::max_element(last, last + m->vocab()) - last)) << "row " << t;
  }
}

TEST(IclRun, CapturesEqualAPlainForwardsProbes) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  ScratchDir dir;
  const IclStandIn s = make_icl_standin(dir.path, 2, 3);
  const data::Tokenizer& tok = cached_tokenizer("qwen3");
  Ctx& ctx = cpu_ctx();
  auto m = load_model(s.model, {Device::cpu, DType::f32, false}, ctx);
  const std::vector<int32_t> ids = tok.encode("Sentence: a dull , lifeless mess . Label: negative Sentence: warm Label:");
  const int64_t T = int64_t(ids.size()), L = 2, D = 32, H = 4;
  icl::Capturer cap(*m, ctx, T + 3);
  const icl::PromptCapture c = cap.run(ids, {true, 5, 5});
  ProbeSink sink;
  sink.add(parse_probe_request("hidden@all:last", T, L));
  sink.add(parse_probe_request("scores@all:last", T, L));
  Buffer ids_dev(Device::cpu, DType::i32, {1, T});
  from_host_f64(ctx, ids_dev.t(), std::vector<double>(ids.begin(), ids.end()));
  m->plan(ctx, 1, T);
  {
    ProbeScope scope(ctx, &sink);
    m->forward(ctx, ids_dev, Tensor(), 0);
  }
  ASSERT_EQ(c.hidden.size(), size_t(L + 1));
  const std::vector<const Capture*> h = sink.find("hidden");
  ASSERT_EQ(h.size(), size_t(L));
  for (int64_t i = 0; i < D; ++i) EXPECT_NEAR(c.hidden[1][size_t(i)], h[0]->values[size_t(i)], 1e-5);
  // hidden[L] is after the final norm: the tied head of it gives the forward's last logits.
  const std::vector<double> logits = m->logits_f64(ctx);
  std::vector<double> E;
  for (const Param& p : m->params())
    if (p.name == "model.embed_tokens.weight") E = to_host_f64(ctx, p.value);
  for (int32_t v : {0, 17, 4096, 151935}) {
    double z = 0;
    for (int64_t i = 0; i < D; ++i) z += E[size_t(v * D + i)] * c.hidden[size_t(L)][size_t(i)];
    EXPECT_NEAR(z, logits[size_t((T - 1) * m->vocab() + v)], 1e-4) << "token " << v;
  }
  const std::vector<const Capture*> sc = sink.find("scores");
  ASSERT_EQ(sc.size(), size_t(L));
  for (int64_t l = 0; l < L; ++l) {
    const int64_t S = sc[size_t(l)]->shape[3];
    for (int64_t hh = 0; hh < H; ++hh)
      for (int64_t k = 0; k < T; ++k)
        EXPECT_NEAR(c.scores[size_t(l)][size_t(hh * T + k)], sc[size_t(l)]->values[size_t(hh * S + k)], 1e-4);
  }
  // Probabilities summed over heads on the first 5 keys; q_proj rows 0..4 and the last.
  ASSERT_EQ(c.prefix_probs[0].size(), 5u);
  ASSERT_EQ(c.q_prefix[0].size(), size_t(5 * H * 8));
  ASSERT_EQ(c.q_last[0].size(), size_t(H * 8));
  double mass = 0;
  for (float p : c.prefix_probs[1]) mass += p;
  EXPECT_GT(mass, 0.0);
  EXPECT_LT(mass, double(H));
}

TEST(IclRun, SelectKeepsTheFirstSeedWithTheBestIclAccuracy) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  ScratchDir dir;
  const IclStandIn s = make_icl_standin(dir.path, 2, 6);
  const nlohmann::ordered_json j = icl::run_select(s.yaml, {"analysis.label_scoring=true"}, Device::cpu, DType::f32, nullptr);
  const std::vector<double> acc = j["accuracy"].get<std::vector<double>>();
  ASSERT_EQ(acc.size(), 3u);
  const int64_t best = int64_t(std::max_element(acc.begin(), acc.end()) - acc.begin());
  EXPECT_EQ(j["best_seed"].get<int64_t>(), best);
  EXPECT_EQ(j["best_accuracy"].get<double>(), acc[size_t(best)]);
  // Each seed's accuracy is the ICL accuracy of its demonstrations.
  const config::ExperimentConfig cfg = icl::load_icl_experiment(s.yaml, {});
  const icl::IclData d = icl::load_icl_data(cfg.analysis.as<icl::IclConfig>());
  Ctx& ctx = cpu_ctx();
  auto m = load_model(s.model, {Device::cpu, DType::f32, false}, ctx);
  for (int64_t seed = 0; seed < 3; ++seed) {
    const std::string context = icl::icl_context(d.task, icl::select_records(d.train, icl::demonstration_indices(24, 2, seed)));
    const icl::Prediction p =
        icl::predict(*m, ctx, cached_tokenizer("qwen3"), d.task, icl::icl_prompts(context, d.eval), d.eval, 5, true);
    EXPECT_EQ(p.accuracy, acc[size_t(seed)]) << "seed " << seed;
  }
  EXPECT_TRUE(fs::exists(dir / "out/select_sst2.json"));
}

}  // namespace
}  // namespace attnlab::test
