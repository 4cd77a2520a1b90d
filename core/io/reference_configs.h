#pragma once
// The reference model configs, in one place: what `attnlab init --arch A` writes and what an
// experiment's `model.from: init:A` starts from (gpt2 = GPT-2 124M, qwen2 = Qwen2.5-0.5B,
// qwen3 = Qwen3-0.6B-Base), the --tiny shape, and the check that a key=value override names a key
// the architecture has (a typo like n_layerz is refused, not written into config.json).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnlab {

// The HF architectures with a reference config.
const std::vector<std::string>& reference_architectures();
// config.json of the reference checkpoint; throws naming the architectures for an unknown one.
nlohmann::ordered_json reference_config_json(const std::string& arch);
// Two layers of width 64, four heads of 16 (two kv heads for Qwen); the real vocabulary.
void make_tiny_config(nlohmann::ordered_json& config, const std::string& arch);
// The config.json keys an override may set for `arch` (what the config parser reads, plus the
// HF keys of the reference file).
std::vector<std::string> overridable_config_keys(const std::string& arch);
// "" when `key` (a top-level config.json key, or attnlab.attention.<option>) may be overridden for
// `arch`, else the problem with a did-you-mean and the accepted keys.
std::string config_override_problem(const std::string& arch, const std::string& key);
// "" when config.json text `json` parses and describes shapes a model can be built with (heads
// dividing the width, kv heads dividing the heads, ...), else the problem in the user's words.
std::string hf_config_shape_problem(const nlohmann::ordered_json& json, const std::string& source);

}  // namespace attnlab
