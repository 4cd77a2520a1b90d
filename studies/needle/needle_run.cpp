#include "studies/needle/needle_run.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/layers/attention_layer.h"
#include "core/memory.h"
#include "core/models/attention_rows.h"
#include "core/models/model.h"
#include "data/tokenizer.h"

namespace attnlab::analysis {

namespace {

// Rows of W (a [rows, D] parameter) in [begin, begin + n), and the matching bias entries (or 0).
std::vector<double> project(const std::vector<double>& emb, int64_t T, int64_t D, const std::vector<double>& w,
                            const std::vector<double>* b, int64_t begin, int64_t n) {
  std::vector<double> out(size_t(T * n));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < n; ++o) {
      double s = b ? (*b)[size_t(begin + o)] : 0.0;
      for (int64_t k = 0; k < D; ++k) s += emb[size_t(t * D + k)] * w[size_t((begin + o) * D + k)];
      out[size_t(t * n + o)] = s;
    }
  return out;
}

// softmax over every key (no causal mask: the ORIGINAL applied only a padding mask).
std::vector<double> softmax_map(const std::vector<double>& q, const std::vector<double>& k, int64_t T, int64_t d) {
  std::vector<double> a(size_t(T * T));
  const double scale = 1.0 / std::sqrt(double(d));
  for (int64_t i = 0; i < T; ++i) {
    double mx = -INFINITY;
    for (int64_t j = 0; j < T; ++j) {
      double s = 0;
      for (int64_t c = 0; c < d; ++c) s += q[size_t(i * d + c)] * k[size_t(j * d + c)];
      a[size_t(i * T + j)] = s * scale;
      mx = std::max(mx, s * scale);
    }
    double z = 0;
    for (int64_t j = 0; j < T; ++j) z += (a[size_t(i * T + j)] = std::exp(a[size_t(i * T + j)] - mx));
    for (int64_t j = 0; j < T; ++j) a[size_t(i * T + j)] /= z;
  }
  return a;
}

std::vector<double> host(Ctx& ctx, ScratchDecoder& m, const std::string& name) {
  return to_host_f64(ctx, m.params().at(name).value);
}

}  // namespace

std::vector<double> seed_compat_map(ScratchDecoder& m, Ctx& ctx, const std::vector<int32_t>& ids, int64_t layer) {
  const ScratchDecoderConfig& c = m.config();
  const int64_t T = int64_t(ids.size()), D = c.hidden, d = c.head_dim;
  CHECK(layer >= 0 && layer < c.layers, "seed_compat_map: layer ", layer, " of ", c.layers);
  const std::vector<double> table = host(ctx, m, "tok_emb.weight");
  std::vector<double> emb(size_t(T * D));
  for (int64_t t = 0; t < T; ++t) {
    CHECK(ids[size_t(t)] >= 0 && ids[size_t(t)] < c.vocab_size, "seed_compat_map: id ", ids[size_t(t)]);
    for (int64_t k = 0; k < D; ++k) emb[size_t(t * D + k)] = table[size_t(ids[size_t(t)] * D + k)];
  }
  const std::string p = "blocks." + std::to_string(layer) + ".attn.";
  const bool seed = c.preset == ScratchDecoderConfig::Preset::seed;
  const auto wq = host(ctx, m, p + "q_proj.weight"), wk = host(ctx, m, p + "k_proj.weight");
  std::vector<double> bq, bk;
  if (seed) bq = host(ctx, m, p + "q_proj.bias"), bk = host(ctx, m, p + "k_proj.bias");
  const std::vector<double>* bqp = seed ? &bq : nullptr;
  const std::vector<double>* bkp = seed ? &bk : nullptr;
  if (!c.differential) return softmax_map(project(emb, T, D, wq, bqp, 0, d), project(emb, T, D, wk, bkp, 0, d), T, d);
  // Head 0: q rows [0, d) are Q1, [d, 2d) Q2 (both presets' layout).
  const auto a1 = softmax_map(project(emb, T, D, wq, bqp, 0, d), project(emb, T, D, wk, bkp, 0, d), T, d);
  const auto a2 = softmax_map(project(emb, T, D, wq, bqp, d, d), project(emb, T, D, wk, bkp, d, d), T, d);
  double lambda = 0;
  if (seed) {
    lambda = std::exp(host(ctx, m, p + "lambda")[0]) + 0.05;
  } else {
    const auto q1 = host(ctx, m, p + "lambda_q1"), k1 = host(ctx, m, p + "lambda_k1");
    const auto q2 = host(ctx, m, p + "lambda_q2"), k2 = host(ctx, m, p + "lambda_k2");
    double d1 = 0, d2 = 0;
    for (size_t i = 0; i < q1.size(); ++i) d1 += q1[i] * k1[i], d2 += q2[i] * k2[i];
    lambda = std::exp(d1) - std::exp(d2) + 0.8 - 0.6 * std::exp(-0.3 * double(layer));
  }
  std::vector<double> out(a1.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = a1[i] - lambda * a2[i];
  return out;
}

NeedleModelInfo needle_model_info(const TrainableModel& m) {
  if (const auto* s = dynamic_cast<const ScratchDecoder*>(&m)) return {s->config().context, s->config().differential};
  if (const auto* h = dynamic_cast<const Model*>(&m))
    return {h->config().max_position_embeddings, attention_variant_of(h->config()) == "differential"};
  FAIL_WITH("the needle analysis does not know the model ", m.describe());
}

NeedleReport run_needle_analysis(TrainableModel& m, Ctx& ctx, const data::Tokenizer& tok, const NeedleRunOptions& opt) {
  const NeedleModelInfo info = needle_model_info(m);
  const int64_t layers = m.num_layers();
  const int64_t layer = opt.layer < 0 ? layers - 1 : opt.layer;
  INPUT_CHECK(layer < layers, "needle analysis: layer ", layer, " but the model has ", layers,
              " layers. Fix: a layer below that, or -1 for the last");
  auto* scratch = dynamic_cast<ScratchDecoder*>(&m);
  INPUT_CHECK(!opt.seed_compat || scratch, "needle analysis: --seed-compat-analysis (seed_compat) recomputes the ",
              "ORIGINAL map from a from-scratch decoder's raw embeddings; ", m.describe(), " is not one. Fix: drop it");
  m.set_training(false);
  const auto contexts = generate_needle_contexts(opt.contexts);
  std::vector<double> depths;
  std::vector<NeedleMasses> masses;
  int64_t planned_T = -1;
  for (const NeedleContext& c : contexts) {
    const NeedleTokens t = tokenize_needle_context(tok, c);
    INPUT_CHECK(int64_t(t.ids.size()) <= info.positions, "needle analysis: a context of ", t.ids.size(),
                " tokens exceeds the model's ", info.positions, " positions. Fix: lower --context-length");
    for (int32_t id : t.ids)
      INPUT_CHECK(id >= 0 && id < m.vocab_size(), "needle analysis: the tokenizer gives token id ", id,
                  " but the model's vocabulary has ", m.vocab_size(),
                  " entries. Fix: pass the model's own tokenizer (--tokenizer)");
    if (opt.seed_compat) {
      const int64_t T = int64_t(t.ids.size());
      const auto map = seed_minmax(seed_compat_map(*scratch, ctx, t.ids, layers - 1), info.differential);
      const int64_t span_len = int64_t(tok.encode(c.target_needle).size());
      for (int64_t slot : c.target_slots) {
        // all_depths: one result per target slot, at that slot's depth.
        masses.push_back(seed_answer_noise(map, T, slot, span_len));
        double depth = c.depth;
        for (double d : opt.contexts.depths)
          if (int64_t(std::floor(d * double(c.n_words))) == slot) depth = d;
        depths.push_back(depth);
      }
      continue;
    }
    std::vector<int32_t> rows;
    if (opt.last_row_only) rows.push_back(int32_t(t.ids.size() - 1));
    else
      for (int64_t r = t.question.begin; r < t.question.end; ++r) rows.push_back(int32_t(r));
    if (planned_T != int64_t(t.ids.size())) {
      planned_T = int64_t(t.ids.size());
      m.plan(ctx, 1, planned_T);
    }
    const auto a = planned_attention_rows(m, ctx, t.ids, rows, layer);
    masses.push_back(needle_masses(a, t.span, t.context));
    depths.push_back(c.depth);
  }
  NeedleReport r;
  r.differential = info.differential;
  r.depths = aggregate_by_depth(depths, masses);
  return r;
}

std::string needle_report_json(const NeedleReport& r) {
  nlohmann::ordered_json j;
  j["model"] = r.label;
  j["attention"] = r.differential ? "differential" : "standard";
  auto per_depth = [&](auto f) {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (const DepthStats& d : r.depths) {
      char key[32];
      std::snprintf(key, sizeof key, "%g", d.depth);
      o[key] = f(d);
    }
    return o;
  };
  j["avg_answer_attention_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_answer; });
  j["avg_noise_attention_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_noise; });
  j["attention_ratio_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_answer / d.mean_noise; });
  j["individual_answer_attention_per_depth"] = per_depth([](const DepthStats& d) { return d.answers; });
  j["individual_noise_attention_per_depth"] = per_depth([](const DepthStats& d) { return d.noises; });
  j["std_answer_attention_per_depth"] = per_depth([](const DepthStats& d) { return d.std_answer; });
  j["std_noise_attention_per_depth"] = per_depth([](const DepthStats& d) { return d.std_noise; });
  j["answer_per_token_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_answer_per_token; });
  j["noise_per_token_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_noise_per_token; });
  j["anr_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_anr; });
  j["anr_std_per_depth"] = per_depth([](const DepthStats& d) { return d.std_anr; });
  j["mass_ratio_per_depth"] = per_depth([](const DepthStats& d) { return d.mean_mass_ratio; });
  return j.dump(2);
}

std::string needle_reports_csv(const std::vector<NeedleReport>& reports) {
  std::ostringstream o;
  o.precision(10);
  o << "model,depth,n,answer_mass,answer_std,noise_mass,noise_std,answer_per_token,noise_per_token,anr,anr_std,"
       "mass_ratio\n";
  for (const NeedleReport& r : reports)
    for (const DepthStats& d : r.depths)
      o << '"' << r.label << '"' << ',' << d.depth << ',' << d.n << ',' << d.mean_answer << ',' << d.std_answer << ','
        << d.mean_noise << ',' << d.std_noise << ',' << d.mean_answer_per_token << ',' << d.mean_noise_per_token << ','
        << d.mean_anr << ',' << d.std_anr << ',' << d.mean_mass_ratio << '\n';
  return o.str();
}

}  // namespace attnlab::analysis
