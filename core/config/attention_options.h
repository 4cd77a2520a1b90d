#pragma once
// The attention options, declared once (issue: variant options declared once).
//
// One table (attention_option_decls) names every option of every attention variant: its values,
// default, doc, range and the variants that take it. That table drives
//   - YAML's `model.attention.*` fields (core/config/model_config.cpp), hence the loader, the
//     overrides, `attnlab config fields` and `attnlab validate`;
//   - the `attnlab` block of config.json ({"attnlab": {"attention": {...}}}), read by the layers
//     (attention_options_from_json) and written by the trainer and `attnlab init`
//     (attention_options_to_json);
//   - the combination rules (attention_option_problems): validate refuses what no layer can build,
//     with the same words the layers would use, so nothing validates that is refused at build time.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnlab {

struct AttentionOptions {
  std::string variant = "standard";   // standard | differential | two_pass
  std::string norm = "softmax";       // softmax | linear | ramp
  std::optional<double> ramp_alpha;   // ramp with ramp_schedule constant only
  std::string ramp_schedule = "constant";  // ramp only: constant (ramp_alpha) | by_layer (alpha_l = (L - l)/L)
  std::string norm_mask = "visible";  // linear / ramp: visible (causal + padding) | unmasked (METHODS §4.4's literal)
  std::string controller = "none";    // none | info_density | temperature
  std::string preset = "paper";       // differential: paper | seed
  std::optional<double> lambda_init;  // differential seed preset only
  std::string impl = "auto";          // auto | materialized | fused
  std::string draft_mask = "causal";  // two_pass: causal | none (the draft pass's mask, METHODS §1.9)
  std::string cached_gather = "self"; // two_pass: self (u_t = e_t when decoding) | draft_keys (§1.9)
  std::string scratch;                // set by the from-scratch decoders (their baseline's layout), not by users
};

struct AttentionOptionDecl {
  std::string name;
  std::string doc;
  std::vector<std::string> choices;  // enumerations; empty for numbers
  std::string def;                   // default (enumerations); numbers have none (unset)
  double lo = 0, hi = 0;             // numbers: [lo, hi]
  std::vector<std::string> variants; // the variants that take it; empty: every variant
  std::string AttentionOptions::*text = nullptr;
  std::optional<double> AttentionOptions::*number = nullptr;
  bool user_facing = true;           // false: set by attnlab itself (not a YAML field)
};

// Every option, in the order `attnlab config fields` lists them.
const std::vector<AttentionOptionDecl>& attention_option_decls();
// The variants the layers implement (the choices of "variant").
const std::vector<std::string>& attention_variant_choices();

// What is wrong with a combination: (option name, message) pairs, empty when a layer can build it.
// `rope`: the model has rotary positions (Qwen). `prefix` names the options in the messages:
// "model.attention." (YAML) or "attnlab.attention." (config.json).
std::vector<std::pair<std::string, std::string>> attention_option_problems(const AttentionOptions& o, bool rope,
                                                                           const std::string& prefix);

// The "attention" object of config.json's attnlab block → options (null: defaults). Throws one error
// naming `source`, every bad key or value and the fix.
AttentionOptions attention_options_from_json(const nlohmann::ordered_json& block, const std::string& source);
// Options → the "attention" object (only values that differ from the defaults; empty object when none).
nlohmann::ordered_json attention_options_to_json(const AttentionOptions& o);

// The ramp weight of block `layer` of `num_layers` (norm: ramp): ramp_alpha, or with ramp_schedule:
// by_layer METHODS §4.5's alpha_l = (L - l)/L (layer 0: 1, fully linear; the last layer: 1/L).
double ramp_alpha_for_layer(const AttentionOptions& o, int64_t layer, int64_t num_layers);

}  // namespace attnlab
