#pragma once
// The gate-influence analysis of `attnlab chat --analyze-gates` (METHODS §1.8).
//
// A two-pass layer asked for gates (ProbeRequest::gates) captures, on every forward call, the
// per-token magnitude m_t = (‖adj_q,t‖₂ + ‖adj_k,t‖₂ + ‖adj_v,t‖₂)/3 as "gate_magnitude" [B, T].
// Generation calls each layer once for the prompt (call 0, the prefill) and once per decode step.
// CHOICE (§1.8): only decode steps count, one value per generated token: token i's value is the
// call whose input is token i (its own hidden state), so the caller feeds the last generated token
// through one more decode step. The prefill's values are not part of the series (the original
// concatenates them, which shifts the token indices).
//
// Reported: the [token][layer] magnitudes, the mean per layer over the tokens, the overall mean,
// and the token with the largest layer-averaged magnitude.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/probes.h"

namespace attnlab::two_pass {

struct GateReport {
  int64_t layers = 0;
  std::vector<int32_t> ids;                    // the generated tokens
  std::vector<std::string> tokens;             // their text (special tokens spelled out)
  std::vector<std::vector<double>> magnitude;  // [token][layer]
  std::vector<double> per_layer_mean;          // [layer]: mean over the tokens
  double overall_mean = 0;                     // mean over tokens and layers
  int64_t max_index = -1;                      // the token with the largest layer-averaged magnitude
  double max_value = 0;                        // its layer-averaged magnitude
};

// The report of `tokens` generated tokens (ids and texts of equal length) from the sink's
// gate_magnitude captures: for every layer, the call `first_call + i` gives token i's value at
// [row, 0] of its [B, 1] capture. When the sink holds no gate_magnitude capture at all, throws the
// user-facing error that `model` has no two-pass gates (and the fix); any other gap is an error
// naming the layer and call.
GateReport gate_report_from_captures(const ProbeSink& sink, int64_t layers, int64_t first_call, int64_t row,
                                     const std::vector<int32_t>& ids, const std::vector<std::string>& tokens,
                                     const std::string& model);

// {"tokens": [str...], "ids": [...], "layers": L, "magnitude": [[L floats] per token],
//  "per_layer_mean": [L], "overall_mean": x, "max_token": {"index", "id", "token", "magnitude"}}
nlohmann::ordered_json gate_report_json(const GateReport& r);

// The console table: one line per generated token (its text and the per-layer magnitudes, then
// their mean), the per-layer means and the token with the largest magnitude.
std::string gate_report_table(const GateReport& r);

}  // namespace attnlab::two_pass
