#include "studies/ards/ards.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "core/error.h"

namespace attnlab::ards {

const char* mode_file_name(Mode m) {
  switch (m) {
    case Mode::baseline: return "baseline";
    case Mode::monitor: return "monitor";
    case Mode::optimize: return "ards";
    case Mode::linearize: return "linearization";
    case Mode::leramp: return "linear_ramp";
  }
  return "?";
}

const char* mode_title(Mode m) {
  switch (m) {
    case Mode::baseline: return "Baseline";
    case Mode::monitor: return "Monitor";
    case Mode::optimize: return "ARDS";
    case Mode::linearize: return "Linearization";
    case Mode::leramp: return "Linear Ramp";
  }
  return "?";
}

const char* mode_value_label(Mode m) {
  switch (m) {
    case Mode::optimize: return "γ Adjustment";
    case Mode::leramp: return "Alpha Value";
    default: return "Prob Variance";
  }
}

bool takes_unmasked(Mode m) { return m == Mode::linearize || m == Mode::leramp; }

std::vector<std::string> attention_overrides(Mode m, bool unmasked) {
  CHECK(!unmasked || takes_unmasked(m), "ards: the unmasked prefill is an option of the linearize and leramp modes");
  std::vector<std::string> o;
  switch (m) {
    case Mode::optimize: o = {"controller=info_density"}; break;
    case Mode::linearize: o = {"norm=linear"}; break;
    case Mode::leramp: o = {"norm=ramp", "ramp_schedule=by_layer"}; break;
    default: break;
  }
  if (unmasked) o.push_back("norm_mask=unmasked");
  return o;
}

bool has_diagnostics(Mode m) { return m != Mode::baseline; }

ProbeRequest probe_request(Mode m) {
  ProbeRequest r;
  if (!has_diagnostics(m)) return r;
  r.kl = r.entropy = r.variance = true;
  r.controller = m == Mode::optimize;
  return r;
}

const std::vector<std::string>& default_prompts() {
  static const std::vector<std::string> p = {
      "Language: English. Write about Chinese and Western cooking techniques, explaining key differences.",
      "Write a fictional story about a quantum physicist who discovers their cat is actually conscious in multiple "
      "dimensions simultaneously.",
      "what is square root of 3343?"};
  return p;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}

}  // namespace

bool sampled(uint64_t seed, int64_t layer, int64_t call, double rate) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ uint64_t(layer)) ^ uint64_t(call));
  return double(h >> 11) * 0x1.0p-53 < rate;
}

PromptDiagnostics collect(const ProbeSink& sink, Mode mode, int64_t num_layers, const std::vector<double>& alphas,
                          double sampling_rate, uint64_t seed) {
  PromptDiagnostics d;
  d.mode = mode;
  if (!has_diagnostics(mode)) return d;
  CHECK(mode != Mode::leramp || int64_t(alphas.size()) == num_layers, "ards: leramp needs one alpha per layer");
  for (int64_t l = 0; l < num_layers; ++l) {
    LayerSeries s;
    s.layer = l;
    const auto kl = sink.find("kl", l), ent = sink.find("entropy", l), var = sink.find("variance", l);
    const auto ctrl = sink.find("controller", l);
    CHECK(kl.size() == ent.size() && kl.size() == var.size(), "ards: layer ", l, " captured uneven diagnostics");
    CHECK(mode != Mode::optimize || ctrl.size() == kl.size(), "ards: layer ", l,
          " has no controller captures (is the model loaded with controller=info_density?)");
    for (size_t c = 0; c < kl.size(); ++c) {
      Record r;
      r.call = kl[c]->call;
      r.kl = mean(kl[c]->values);
      r.entropy = mean(ent[c]->values);
      r.variance = mean(var[c]->values);
      double value = r.variance;
      if (mode == Mode::optimize) {
        r.adjustment = mean(ctrl[c]->values);
        value = ctrl[c]->values.at(0);  // a[0, 0, 0]: batch 0, head 0, the call's first query
      }
      if (mode == Mode::leramp) value = r.alpha = alphas[size_t(l)];
      s.values.push_back(value);
      s.all.push_back(r);
      if (sampled(seed, l, r.call, sampling_rate)) s.records.push_back(r);
    }
    d.calls = std::max<int64_t>(d.calls, int64_t(kl.size()));
    d.layers.push_back(std::move(s));
  }
  return d;
}

std::string console_summary(const PromptDiagnostics& d) {
  std::ostringstream os;
  char line[256];
  for (const LayerSeries& s : d.layers) {
    if (s.records.empty()) {
      std::snprintf(line, sizeof line, "Layer %lld.self_attn: no sampled records\n", (long long)s.layer);
      os << line;
      continue;
    }
    double kl = 0, var = 0, adj = 0, ent = 0;
    for (const Record& r : s.records) kl += r.kl, var += r.variance, adj += r.adjustment, ent += r.entropy;
    const double n = double(s.records.size());
    kl /= n, var /= n, adj /= n, ent /= n;
    switch (d.mode) {
      case Mode::optimize:
        std::snprintf(line, sizeof line, "Layer %lld.self_attn: Avg Adjustment = %.3f | Avg KL Div = %.4f\n",
                      (long long)s.layer, adj, kl);
        break;
      case Mode::linearize:
        std::snprintf(line, sizeof line, "Layer %lld.self_attn: Avg Prob Variance = %.6f | Avg KL from Softmax = %.4f\n",
                      (long long)s.layer, var, kl);
        break;
      case Mode::leramp:
        std::snprintf(line, sizeof line, "Layer %lld.self_attn: Alpha = %.4f | Avg KL from Softmax = %.4f\n",
                      (long long)s.layer, s.records[0].alpha, kl);
        break;
      default:
        std::snprintf(line, sizeof line,
                      "Layer %lld.self_attn: Avg Prob Variance = %.6f | Avg Entropy = %.4f | Avg KL from Softmax = %.4f\n",
                      (long long)s.layer, var, ent, kl);
        break;
    }
    os << line;
  }
  return os.str();
}

nlohmann::ordered_json to_json(const PromptDiagnostics& d) {
  nlohmann::ordered_json j;
  j["mode"] = mode_file_name(d.mode);
  j["keys"] = d.unmasked ? "unmasked" : "visible";  // METHODS §4.4: visible keys, or the literal unmasked prefill
  j["title"] = mode_title(d.mode);
  j["value_label"] = mode_value_label(d.mode);
  j["calls"] = d.calls;
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const LayerSeries& s : d.layers) {
    nlohmann::ordered_json l;
    l["layer"] = s.layer;
    l["name"] = std::to_string(s.layer) + ".self_attn";
    l["values"] = s.values;
    nlohmann::ordered_json recs = nlohmann::ordered_json::array();
    for (const Record& r : s.records) {
      nlohmann::ordered_json x;
      x["call"] = r.call;
      // §4.6's record names per mode, then the rest under plain names.
      if (d.mode == Mode::optimize) {
        x["avg_adjustment"] = r.adjustment, x["avg_kl_div"] = r.kl, x["avg_mod_entropy"] = r.entropy;
        x["avg_prob_variance"] = r.variance;
      } else if (d.mode == Mode::linearize) {
        x["avg_prob_variance"] = r.variance, x["avg_kl_from_softmax"] = r.kl, x["avg_linear_entropy"] = r.entropy;
      } else if (d.mode == Mode::leramp) {
        x["alpha_value"] = r.alpha, x["avg_kl_from_softmax"] = r.kl, x["avg_mixed_entropy"] = r.entropy;
        x["avg_prob_variance"] = r.variance;
      } else {
        x["avg_prob_variance"] = r.variance, x["avg_kl_from_softmax"] = r.kl, x["avg_entropy"] = r.entropy;
      }
      recs.push_back(x);
    }
    l["records"] = recs;
    layers.push_back(l);
  }
  j["layers"] = layers;
  return j;
}

std::string to_csv(const PromptDiagnostics& d) {
  std::ostringstream os;
  os.precision(10);
  os << "layer,call,value,sampled,kl,entropy,variance,adjustment,alpha\n";
  for (const LayerSeries& s : d.layers) {
    std::map<int64_t, const Record*> rec;
    for (const Record& r : s.records) rec[r.call] = &r;
    for (size_t c = 0; c < s.values.size(); ++c) {
      const int64_t call = s.all[c].call;
      os << s.layer << ',' << call << ',' << s.values[c] << ',';
      auto it = rec.find(call);
      if (it == rec.end()) {
        os << "0,,,,,\n";
        continue;
      }
      const Record& r = *it->second;
      os << "1," << r.kl << ',' << r.entropy << ',' << r.variance << ',' << r.adjustment << ',' << r.alpha << '\n';
    }
  }
  return os.str();
}

}  // namespace attnlab::ards
