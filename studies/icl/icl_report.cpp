// Metrics and outputs of one ICL-study run (METHODS §2.7-2.11; icl_report.h).
#include "studies/icl/icl_report.h"

#include <cmath>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/io/safetensors.h"
#include "core/layers/param.h"
#include "core/memory.h"

namespace attnlab::icl {

namespace fs = std::filesystem;

namespace {

bool is_kv(const std::string& name) {
  return name.find(".k_proj.") != std::string::npos || name.find(".v_proj.") != std::string::npos;
}

nlohmann::ordered_json number_or_null(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nullptr; }
nlohmann::ordered_json array_of(const std::vector<double>& v) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (double x : v) a.push_back(number_or_null(x));
  return a;
}

// Per-layer means with NaN values left out.
struct NanMeans {
  explicit NanMeans(int64_t L) : m(L) {}
  void add(int64_t l, double v) {
    if (std::isfinite(v)) m.add(l, v);
  }
  LayerMeans m;
};

}  // namespace

std::string output_stem(const IclConfig& c) {
  return (fs::path(c.out) / ("icl_" + std::string(sst_task_name(c.dataset)) + "_seed" + std::to_string(c.seed))).string();
}

int64_t kv_only_check(Ctx& base_ctx, const Model& base, Ctx& ft_ctx, const Model& ft,
                      std::vector<std::string>& frozen_changed) {
  int64_t kv_changed = 0;
  auto it = ft.params().begin();
  for (const Param& p : base.params()) {
    CHECK(it != ft.params().end() && it->name == p.name, "icl: the fine-tuned model's parameters differ from the base's");
    const std::vector<double> a = to_host_f64(base_ctx, p.value), b = to_host_f64(ft_ctx, it->value);
    const bool same = a == b;
    if (is_kv(p.name)) kv_changed += same ? 0 : 1;
    else if (!same) frozen_changed.push_back(p.name);
    ++it;
  }
  return kv_changed;
}

void compute_metrics(IclResults& r, const RunParts& parts) {
  const IclConfig& c = r.config;
  const int64_t L = r.layers, N = r.n_eval;
  if (r.zsl && r.icl && r.ft) r.rec = rec2ft(r.zsl->correct_idx, r.icl->correct_idx, r.ft->correct_idx);

  const bool have_ft = int64_t(r.ft_cap.size()) == N && N > 0;
  if (parts.simaou && have_ft) {
    SimAouOptions o;
    o.source = c.simaou_source;
    o.include_embedding_layer = c.include_embedding_layer;
    o.norm_eps = c.simaou_paper ? 1e-20 : 1e-5;
    o.random = c.simaou_paper ? RandomDraw::uniform : RandomDraw::normal;
    o.seed = c.random_seed;
    const bool hidden = c.simaou_source == SimAouSource::hidden;
    SimAou s(hidden ? L + 1 : L, o);
    for (int64_t t = 0; t < N; ++t) {
      const auto& z = hidden ? r.zsl_cap[size_t(t)].hidden : r.zsl_cap[size_t(t)].attn_out;
      const auto& i = hidden ? r.icl_cap[size_t(t)].hidden : r.icl_cap[size_t(t)].attn_out;
      const auto& f = hidden ? r.ft_cap[size_t(t)].hidden : r.ft_cap[size_t(t)].attn_out;
      for (int64_t l = 0; l < int64_t(z.size()); ++l) s.add(l, z[size_t(l)], i[size_t(l)], f[size_t(l)]);
    }
    r.simaou = s.result();
  }
  if (parts.simam && have_ft) {
    SimAm s(L);
    for (int64_t t = 0; t < N; ++t)
      for (int64_t l = 0; l < L; ++l) {
        const auto& z = r.zsl_cap[size_t(t)].scores[size_t(l)];
        const auto& ic = r.icl_cap[size_t(t)].scores[size_t(l)];
        const int64_t Lq = r.zsl_cap[size_t(t)].T;
        const int64_t Lc = r.icl_cap[size_t(t)].T;
        // PAPER slices from the context's token count; text-level tokenization can merge the
        // context's trailing space into the query's first token, so it is clamped to fit.
        const int64_t start = c.simam_align == SimAmAlign::original ? original_query_start(Lc, Lq)
                                                                    : std::min(r.context_tokens, Lc - Lq);
        s.add(l, int64_t(z.size()) / Lq, z, ic, r.ft_cap[size_t(t)].scores[size_t(l)], start);
      }
    r.simam = s.result();
  }
  if (parts.kendall && N > 0 && !r.qd.empty()) {
    const int64_t W = int64_t(r.zsl_cap[0].q_last[0].size());
    const int64_t Ld = int64_t(r.qd[0].size()) / W;
    std::vector<std::vector<double>> taus(static_cast<size_t>(L));
    PyRandom rng(c.random_seed);
    r.random_kendall_per_layer.assign(size_t(L), 0.0);
    for (int64_t l = 0; l < L; ++l) {
      std::vector<double> a_all;
      int64_t n_ld = Ld;
      for (int64_t t = 0; t < N; ++t) n_ld = std::min<int64_t>(n_ld, int64_t(r.icl_cap[size_t(t)].prefix_probs[size_t(l)].size()));
      for (int64_t t = 0; t < N; ++t) {
        std::vector<double> ip = query_inner_products(r.qd[size_t(l)], Ld, W, r.zsl_cap[size_t(t)].q_last[size_t(l)]);
        std::vector<double> a(r.icl_cap[size_t(t)].prefix_probs[size_t(l)].begin(),
                              r.icl_cap[size_t(t)].prefix_probs[size_t(l)].begin() + n_ld);
        ip.resize(size_t(n_ld));
        taus[size_t(l)].push_back(kendall_tau_b(ip, a));
        a_all.insert(a_all.end(), a.begin(), a.end());
      }
      r.random_kendall_per_layer[size_t(l)] = kendall_random_original(a_all, N, n_ld, rng);
    }
    r.kendall = summarize_kendall(taus, /*skip_nan=*/true);
    double s = 0;
    for (double v : r.random_kendall_per_layer) s += v;
    r.random_kendall = s / double(L);
  }
  if (parts.kendall && c.kendall_paper && N > 0 && !r.paper_train_q.empty()) {
    const int64_t W = int64_t(r.zsl_cap[0].q_last[0].size());
    KendallPaperOptions o;
    PyRandom rng(c.random_seed + 1);
    std::vector<NanMeans> m(8, NanMeans(L));
    for (int64_t t = 0; t < N; ++t) {
      const PromptCapture& ic = r.icl_cap[size_t(t)];
      for (int64_t l = 0; l < L; ++l) {
        std::vector<double> icl_s, ft_s;
        const std::vector<float>& q = r.zsl_cap[size_t(t)].q_last[size_t(l)];
        const int64_t H = int64_t(ic.scores[size_t(l)].size()) / ic.T;
        int64_t start = 0;
        for (size_t j = 0; j < r.paper_train_q.size(); ++j) {
          for (int64_t i = 0; i < r.paper_demo_tokens[j]; ++i) {
            double s = 0;
            for (int64_t h = 0; h < H; ++h) s += ic.scores[size_t(l)][size_t(h * ic.T + start + i)];
            icl_s.push_back(s);
            const float* qt = r.paper_train_q[j][size_t(l)].data() + i * W;
            double ip = 0;
            for (int64_t w = 0; w < W; ++w) ip += double(qt[w]) * double(q[size_t(w)]);
            ft_s.push_back(ip);
          }
          start += r.paper_icl_counts[j];
        }
        const KendallPaperScores k = kendall_paper(icl_s, ft_s, r.paper_demo_tokens, o, rng);
        const double v[8] = {k.token_tau,        k.example_tau,        k.token_recall,        k.example_recall,
                             k.token_random_tau, k.example_random_tau, k.token_random_recall, k.example_random_recall};
        for (int i = 0; i < 8; ++i) m[size_t(i)].add(l, v[i]);
      }
    }
    const char* names[8] = {"token_tau",        "example_tau",        "token_recall",        "example_recall",
                            "token_random_tau", "example_random_tau", "token_random_recall", "example_random_recall"};
    nlohmann::ordered_json j;
    for (int i = 0; i < 8; ++i) {
      j[names[i]] = number_or_null(m[size_t(i)].m.mean());
      j["per_layer"][names[i]] = array_of(m[size_t(i)].m.per_layer());
    }
    j["demonstration_tokens"] = r.paper_demo_tokens;
    r.kendall_paper = j;
  }
}

nlohmann::ordered_json write_icl_outputs(const IclResults& r, const RunParts& parts, std::FILE* console) {
  const IclConfig& c = r.config;
  fs::create_directories(c.out);
  const std::string stem = output_stem(c);
  nlohmann::ordered_json j;
  j["study"] = "icl";
  j["note"] = "METHODS 2: per-layer arrays under per_layer; null = not computed by this command";
  j["dataset"] = sst_task_name(r.dataset);
  j["model"] = r.model;
  j["seed"] = c.seed;
  j["k"] = c.k;
  j["n_eval"] = r.n_eval;
  j["layers"] = r.layers;
  j["demonstration_indices"] = r.demo_indices;
  j["settings"] = {{"prediction", c.label_scoring ? "label_scoring (PAPER)" : "greedy token (ORIGINAL)"},
                   {"finetune", c.ft_paper ? "sgd, label-token loss (PAPER)" : "experiment file (ORIGINAL HF Trainer)"},
                   {"simaou_source", c.simaou_source == SimAouSource::hidden ? "hidden" : "attn_out"},
                   {"include_embedding_layer", c.include_embedding_layer},
                   {"simaou_paper", c.simaou_paper},
                   {"simam_align", c.simam_align == SimAmAlign::original ? "original" : "paper"},
                   {"kendall_paper", c.kendall_paper},
                   {"kendall_demo_pass", c.kendall_demo_pass == KendallDemoPass::separate ? "separate" : "icl"},
                   {"random_seed", c.random_seed}};
  auto acc = [](const std::optional<Prediction>& p) { return p ? nlohmann::ordered_json(p->accuracy) : nullptr; };
  j["ZSL_accuracy"] = acc(r.zsl);
  j["ICL_accuracy"] = acc(r.icl);
  j["FT_accuracy"] = acc(r.ft);
  j["Rec2FTP"] = r.rec ? number_or_null(r.rec->paper) : nullptr;
  j["Rec2FT_seed"] = r.rec ? number_or_null(r.rec->original) : nullptr;
  if (r.rec)
    j["rec2ft_counts"] = {{"ft_gain", r.rec->ft_gain}, {"icl_gain", r.rec->icl_gain},
                          {"shared_gain", r.rec->shared_gain}, {"ft_not_icl", r.rec->ft_not_icl}};
  j["SimAOU"] = r.simaou ? number_or_null(r.simaou->mean) : nullptr;
  j["RandomSimAOU"] = r.simaou ? number_or_null(r.simaou->random_mean) : nullptr;
  j["SimAM"] = r.simam ? number_or_null(r.simam->mean) : nullptr;
  j["ZSL_SimAM"] = r.simam ? number_or_null(r.simam->zsl_mean) : nullptr;
  j["kendall"] = r.kendall ? number_or_null(r.kendall->mean) : nullptr;
  j["random_kendall"] = r.kendall ? number_or_null(r.random_kendall) : nullptr;
  nlohmann::ordered_json pl;
  if (r.simaou) {
    pl["SimAOU"] = array_of(r.simaou->per_layer);
    pl["RandomSimAOU"] = array_of(r.simaou->random_per_layer);
    pl["SimAOU_first_layer"] = r.simaou->first_layer;
  }
  if (r.simam) {
    pl["SimAM"] = array_of(r.simam->per_layer);
    pl["ZSL_SimAM"] = array_of(r.simam->zsl_per_layer);
  }
  if (r.kendall) {
    pl["kendall"] = array_of(r.kendall->per_layer);
    pl["random_kendall"] = array_of(r.random_kendall_per_layer);
  }
  j["per_layer"] = pl.is_null() ? nlohmann::ordered_json::object() : pl;
  if (!r.kendall_paper.is_null()) j["kendall_paper"] = r.kendall_paper;
  if (r.kendall) {
    j["kendall_Ld"] = r.kendall_Ld;
    j["kendall_nan_count"] = r.kendall->nan_count;
  }
  j["context_tokens"] = r.context_tokens;
  nlohmann::ordered_json ci = nlohmann::ordered_json::object();
  if (r.zsl) ci["ZSL"] = r.zsl->correct_idx;
  if (r.icl) ci["ICL"] = r.icl->correct_idx;
  if (r.ft) ci["FT"] = r.ft->correct_idx;
  j["correct_idx"] = ci;
  if (r.ft_steps > 0)
    j["finetune"] = {{"steps", r.ft_steps},
                     {"first_loss", r.ft_first_loss},
                     {"last_loss", r.ft_last_loss},
                     {"kv_tensors_changed", r.ft_changed},
                     {"frozen_tensors_changed", r.ft_frozen_changed}};
  nlohmann::ordered_json ph = nlohmann::ordered_json::object();
  for (const auto& [name, s] : r.times.phases) ph[name] = s;
  j["phase_seconds"] = ph;

  // ---- captures ----
  const int64_t N = r.n_eval, L = r.layers;
  std::deque<std::vector<float>> store;
  std::vector<NamedTensor> tensors;
  auto add = [&](const std::string& name, std::vector<float> v, const std::vector<int64_t>& dims) {
    if (v.empty()) return;
    store.push_back(std::move(v));
    tensors.push_back({name, make_tensor_view(store.back().data(), DType::f32, Device::cpu, dims, "")});
  };
  auto stack = [&](const std::vector<PromptCapture>& caps, auto member, const std::string& name) {
    if (caps.empty() || (caps[0].*member).empty() || (caps[0].*member)[0].empty()) return;
    const int64_t rows = int64_t((caps[0].*member).size()), W = int64_t((caps[0].*member)[0].size());
    std::vector<float> v;
    for (const PromptCapture& p : caps)
      for (const auto& row : p.*member) v.insert(v.end(), row.begin(), row.end());
    add(name, std::move(v), {int64_t(caps.size()), rows, W});
  };
  const std::pair<const char*, const std::vector<PromptCapture>*> sets[3] = {
      {"zsl", &r.zsl_cap}, {"icl", &r.icl_cap}, {"ft", &r.ft_cap}};
  for (const auto& [name, caps] : sets) {
    stack(*caps, &PromptCapture::hidden, std::string("hidden/") + name);
    stack(*caps, &PromptCapture::attn_out, std::string("attn_out/") + name);
    for (size_t t = 0; t < caps->size(); ++t) {
      const PromptCapture& p = (*caps)[t];
      std::vector<float> v;
      for (const auto& row : p.scores) v.insert(v.end(), row.begin(), row.end());
      if (!v.empty())
        add(std::string("scores/") + name + "/" + std::to_string(t), std::move(v),
            {L, int64_t(p.scores[0].size()) / p.T, p.T});
    }
  }
  stack(r.zsl_cap, &PromptCapture::q_last, "q_test");
  stack(r.icl_cap, &PromptCapture::prefix_probs, "kendall/icl_probs");
  if (!r.qd.empty() && !r.zsl_cap.empty()) {
    std::vector<float> v;
    for (const auto& row : r.qd) v.insert(v.end(), row.begin(), row.end());
    const int64_t W = int64_t(r.zsl_cap[0].q_last[0].size());
    add("kendall/qd", std::move(v), {L, int64_t(r.qd[0].size()) / W, W});
  }
  for (size_t d = 0; d < r.paper_train_q.size(); ++d) {
    std::vector<float> v;
    for (const auto& row : r.paper_train_q[d]) v.insert(v.end(), row.begin(), row.end());
    const int64_t n = r.paper_demo_tokens[d], W = int64_t(v.size()) / std::max<int64_t>(1, L * n);
    if (n > 0) add("kendall_paper/train_q/" + std::to_string(d), std::move(v), {L, n, W});
  }
  const std::string st_path = stem + "_captures.safetensors";
  if (!tensors.empty()) {
    write_safetensors(st_path, tensors,
                      {{"study", "icl"}, {"dataset", sst_task_name(r.dataset)}, {"seed", std::to_string(c.seed)},
                       {"layout", "hidden/* [N, L+1, D] (HF hidden_states, last token); attn_out/* [N, L, D]; "
                                  "scores/<set>/<row> [L, H, T] last query row pre-softmax; q_test [N, L, Hq*d]; "
                                  "kendall/icl_probs [N, L, Ld] head-summed; kendall/qd [L, Ld, Hq*d]"}});
    j["captures"] = st_path;
  }
  (void)N;
  std::ofstream(stem + ".json") << j.dump(2) << "\n";
  if (console) std::fprintf(console, "icl: wrote %s.json%s\n", stem.c_str(), tensors.empty() ? "" : (" and " + st_path).c_str());

  // ---- figures ----
  const bool any_metric = r.simaou || r.simam || r.kendall;
  if (!c.no_plots && any_metric) {
    const std::string figs = (fs::path(c.out) / "figures").string();
    const std::string cmd = "/usr/bin/python3 '" + c.plot_script + "' '" + stem + ".json' --out '" + figs + "'";
    if (!fs::exists(c.plot_script)) {
      if (console)
        std::fprintf(console, "icl: plots: %s not found here (run from the repository root, or set --plot-script); draw them with\n  %s\n",
                     c.plot_script.c_str(), cmd.c_str());
    } else {
      const int rc = std::system((cmd + (console ? "" : " >/dev/null 2>&1")).c_str());
      if (rc != 0 && console) std::fprintf(console, "icl: the plot script failed (exit %d); rerun it by hand:\n  %s\n", rc, cmd.c_str());
      if (rc == 0) j["figures"] = figs;
    }
  }
  return j;
}

void rewrite_json(const IclResults& r, const nlohmann::ordered_json& j) {
  std::ofstream(output_stem(r.config) + ".json") << j.dump(2) << "\n";
}

}  // namespace attnlab::icl
