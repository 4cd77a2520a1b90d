#pragma once
// Study: ARDS — attention controllers and their diagnostics during generation (METHODS §4, seed 003).
//
// The modes run a pretrained folder with other attention options (load_model's overrides):
//   baseline   the unmodified model, no diagnostics
//   monitor    the unmodified model; the diagnostics of its softmax ("non-invasive monitoring", §4.8)
//   optimize   controller: info_density (§4.3; zero-initialised: a = 0; a no-op for any weights)
//   linearize  norm: linear (§4.4, visible keys only; or every key of the prefill, norm_mask: unmasked)
//   leramp     norm: ramp, ramp_schedule: by_layer (§4.5, alpha_l = (L - l)/L; the same mask choice)
// Diagnostics (§4.6) are the attention op's row reductions, captured by probes (core/probes.h) in
// every forward call of every layer (one prefill call, then one call per decode step): KL(softmax ‖
// P), entropy of P, variance of P over the visible keys, and the controller's output (optimize).
// A seeded Bernoulli draw with the sampling rate picks which (layer, call) become sampled records;
// the time series (one value per call: §4.3's a[0,0,0], §4.4's mean variance, §4.5's alpha) are
// kept for every call. collect() turns one prompt's captures into both; the sink is cleared per prompt.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/probes.h"

namespace attnlab::ards {

enum class Mode : uint8_t { baseline, monitor, optimize, linearize, leramp };

// File/JSON name: baseline, monitor, ards, linearization, linear_ramp (§4.8's plot names).
const char* mode_file_name(Mode m);
// Suptitle name: Baseline, Monitor, ARDS, Linearization, Linear Ramp.
const char* mode_title(Mode m);
// The time series' y label: "γ Adjustment", "Prob Variance", "Alpha Value" (monitor: "Prob Variance").
const char* mode_value_label(Mode m);
// load_model's attention overrides for the mode (empty for baseline and monitor). `unmasked`
// (linearize and leramp only, see takes_unmasked): METHODS §4.4's literal prefill, where the linear
// / ramp map of a prompt's rows covers every key of the call, later ones included (norm_mask: unmasked).
std::vector<std::string> attention_overrides(Mode m, bool unmasked = false);
bool takes_unmasked(Mode m);
// What the mode asks the layers to capture (baseline: nothing; check `any`).
ProbeRequest probe_request(Mode m);
bool has_diagnostics(Mode m);

// The three prompts of §4.7.
const std::vector<std::string>& default_prompts();

// Seeded Bernoulli draws for the sampling rate: keep(layer, call) is a pure function of
// (seed, layer, call), so a rerun with the same seed samples the same records.
bool sampled(uint64_t seed, int64_t layer, int64_t call, double rate);

struct Record {
  int64_t call = 0;
  double kl = 0;          // mean over rows (b, h, t) of KL(softmax(Sc) ‖ P)
  double entropy = 0;     // mean of −Σ P log P
  double variance = 0;    // mean of the unbiased variance of P over the visible keys
  double adjustment = 0;  // optimize: mean of the controller's output a over (b, h, t); else 0
  double alpha = 0;       // leramp: alpha_l; else 0
};

struct LayerSeries {
  int64_t layer = 0;
  std::vector<double> values;   // the time series: one value per forward call (call 0 = prefill)
  std::vector<Record> all;      // every call's record (for exact overhead-free checks; not written)
  std::vector<Record> records;  // the sampled records
};

struct PromptDiagnostics {
  Mode mode = Mode::baseline;
  bool unmasked = false;  // METHODS §4.4's literal prefill (norm_mask: unmasked); the JSON's "keys"
  int64_t calls = 0;
  std::vector<LayerSeries> layers;  // in layer order
};

// One prompt's captures → time series and sampled records. `alphas`: leramp's alpha per layer.
PromptDiagnostics collect(const ProbeSink& sink, Mode mode, int64_t num_layers, const std::vector<double>& alphas,
                          double sampling_rate, uint64_t seed);

// §4.8's per-layer console lines (averages over the sampled records; "no sampled records" when none).
std::string console_summary(const PromptDiagnostics& d);
// The JSON of one prompt's diagnostics: mode, calls, per layer its series and sampled records.
nlohmann::ordered_json to_json(const PromptDiagnostics& d);
// CSV, one row per (layer, call): layer,call,value,sampled,kl,entropy,variance,adjustment,alpha
// (the diagnostic columns empty when the call was not sampled).
std::string to_csv(const PromptDiagnostics& d);

}  // namespace attnlab::ards
