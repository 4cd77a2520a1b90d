#include "core/config/buildable.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/config/override_blame.h"
#include "core/io/reference_configs.h"
#include "core/ops/attention.h"

namespace attnlab::config {

namespace {

// Whether an HF folder's config.json describes a model with rotary positions (Qwen2/2.5/3). A
// folder that cannot be read is left to the model loader, which names the problem.
bool folder_has_rope(const std::string& from) {
  if (from.rfind("init:", 0) == 0) return false;
  std::ifstream in(std::filesystem::path(from) / "config.json");
  if (!in) return false;
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("model_type") || !j["model_type"].is_string()) return false;
  return j["model_type"].get<std::string>().rfind("qwen", 0) == 0;
}

// A problem about `path` and the other fields its message names: it points at the override that
// took part (and says how to unset the file's side of the conflict), else at where `path` was
// given, else at the file itself (override_blame.h).
// `reads`: fields the problem depends on that its message does not name.
Problem problem_at(const ExperimentConfig& cfg, const std::string& path, const std::string& message,
                   const std::vector<std::string>& reads = {}) {
  static const Schema schema;
  std::vector<std::string> blame{path};
  for (const std::string& p : fields_named_in(message, schema))
    if (p != path) blame.push_back(p);
  const ProblemPlace place = place_problem(cfg.resolved, schema, blame, reads);
  return {place.where.empty() ? cfg.source : place.where, message + place.note};
}

void arch_problems(const ExperimentConfig& cfg, std::vector<Problem>& out) {
  const std::string arch = cfg.model.init_arch();
  const auto& refs = reference_architectures();
  if (std::find(refs.begin(), refs.end(), arch) == refs.end()) return;
  std::string msg;
  nlohmann::ordered_json json = reference_config_json(arch);
  for (const auto& [key, text] : cfg.model.arch) {
    if (const std::string why = config_override_problem(arch, key); !why.empty()) {
      msg += (msg.empty() ? "" : "; ") + why;
      continue;
    }
    const auto value = nlohmann::ordered_json::parse(text, nullptr, false);
    json[key] = value.is_discarded() ? nlohmann::ordered_json(text) : value;
  }
  if (msg.empty()) msg = hf_config_shape_problem(json, "model.from " + cfg.model.from + " with model.arch");
  if (!msg.empty()) out.push_back(problem_at(cfg, "model.arch", "model.arch: " + msg));
}

void attention_problems(const ExperimentConfig& cfg, std::vector<Problem>& out) {
  const ModelSetupConfig& m = cfg.model;
  const std::string arch = m.init_arch();
  const bool rope = arch == "qwen2" || arch == "qwen3" || folder_has_rope(m.from);
  const bool scratch = arch == "decoder_paper" || arch == "decoder_seed";
  const bool preset_given = cfg.resolved.is_given("model.attention.preset");
  AttentionOptions effective = m.attention;
  // The from-scratch decoders' preset is their architecture's (decoder_paper / decoder_seed).
  if (scratch && !preset_given) effective.preset = arch.substr(8);
  for (const auto& [name, text] : attention_option_problems(effective, rope, "model.attention.")) {
    // norm/ramp_alpha combinations are the loader's own cross-field rules (reported there).
    if (name == "ramp_alpha" || (name == "norm" && m.attention.norm == "ramp")) continue;
    // Whether the model has rotary positions is model.from's doing (the variant's RoPE problem).
    const std::vector<std::string> reads =
        name == "variant" ? std::vector<std::string>{"model.from"} : std::vector<std::string>{};
    out.push_back(problem_at(cfg, "model.attention." + name, text, reads));
  }
  if (m.attention.variant == "two_pass" && scratch)
    out.push_back(problem_at(cfg, "model.attention.variant",
                   "model.attention.variant: two_pass gates Qwen2/2.5, Qwen3 and GPT-2 models (it reads their lm_head); "
                   "the from-scratch decoder " + m.from + " takes standard or differential (use init:qwen2, init:qwen3, "
                   "init:gpt2 or a pretrained folder)",
                   {"model.from"}));
  if (m.attention.variant == "two_pass" && cfg.run.dtype == DType::bf16)
    out.push_back(problem_at(cfg, "run.dtype",
                   "run.dtype: bf16 is not built for model.attention.variant two_pass (its entropies are the draft "
                   "attention's values and there is no bf16 cast op yet); set run.dtype: f32"));
  if (scratch && preset_given && m.attention.preset != arch.substr(8))
    out.push_back(problem_at(cfg, "model.attention.preset",
                   "model.attention.preset: model.from " + m.from + " is the " + arch.substr(8) +
                       " preset; model.attention.preset " + m.attention.preset + " contradicts it (remove it, or use "
                       "init:decoder_" + m.attention.preset + ")"));
}

// model.decoder.* shapes the from-scratch decoders' blocks; the HF architectures have their own
// positions and FFN (config.json), so the options are refused there rather than ignored.
void decoder_problems(const ExperimentConfig& cfg, std::vector<Problem>& out) {
  const std::string arch = cfg.model.init_arch();
  if (arch == "decoder_paper" || arch == "decoder_seed") return;
  for (const DecoderOptionDecl& d : decoder_option_decls()) {
    const std::string path = "model.decoder." + d.name;
    if (decoder_option_is_default(d, cfg.model.decoder) && !cfg.resolved.is_given(path)) continue;
    out.push_back(problem_at(cfg, path, path + " is an option of the from-scratch decoders (model.from "
                                            "init:decoder_paper or init:decoder_seed); model.from " + cfg.model.from +
                                            " takes its positions and FFN from its config.json. Remove " + path));
  }
}

// The model's config.json as far as validate can know it: a reference architecture with the
// model.arch overrides, or a folder's own config.json; null when neither (e.g. a scratch checkpoint).
nlohmann::ordered_json known_model_json(const ExperimentConfig& cfg) {
  const std::string arch = cfg.model.init_arch();
  const auto& refs = reference_architectures();
  if (std::find(refs.begin(), refs.end(), arch) != refs.end()) {
    nlohmann::ordered_json j = reference_config_json(arch);
    for (const auto& [key, text] : cfg.model.arch) {
      const auto value = nlohmann::ordered_json::parse(text, nullptr, false);
      if (!value.is_discarded()) j[key] = value;
    }
    return j;
  }
  if (cfg.model.from.rfind("init:", 0) == 0) return nullptr;
  std::ifstream in(std::filesystem::path(cfg.model.from) / "config.json");
  if (!in) return nullptr;
  auto j = nlohmann::ordered_json::parse(in, nullptr, false);
  return j.is_discarded() || !j.is_object() ? nlohmann::ordered_json() : j;
}

// The model's attention head dim when its config is known.
int64_t known_head_dim(const nlohmann::ordered_json& j) {
  if (!j.is_object()) return 0;
  auto num = [&](const char* k) { return j.contains(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : 0; };
  if (num("head_dim") > 0) return num("head_dim");
  for (auto [w, h] : {std::pair{"n_embd", "n_head"}, std::pair{"hidden_size", "num_attention_heads"}})
    if (num(w) > 0 && num(h) > 0 && num(w) % num(h) == 0) return num(w) / num(h);
  return 0;
}

// GPT-2's attention dropout in training (core/layers/dropout.h's rule: attn_pdrop, 0.1 when absent).
double known_attn_pdrop(const nlohmann::ordered_json& j) {
  if (!j.is_object() || !j.contains("model_type") || j["model_type"] != "gpt2") return 0.0;
  return j.contains("attn_pdrop") && j["attn_pdrop"].is_number() ? j["attn_pdrop"].get<double>() : 0.1;
}

// impl: fused on run.device: cuda asks for the fused kernels on the GPU: the support matrix
// (core/ops/attention.h) must take the model's attention (on the CPU the tiled reference takes all).
void impl_problems(const ExperimentConfig& cfg, std::vector<Problem>& out) {
  const AttentionOptions& o = cfg.model.attention;
  if (o.impl != "fused") return;
  const nlohmann::ordered_json model = known_model_json(cfg);
  // Training applies GPT-2's attention dropout, which the fused backend does not have (any device).
  if (const double p = known_attn_pdrop(model); p > 0)
    out.push_back(problem_at(cfg, "model.attention.impl",
                             "model.attention.impl: fused: training applies GPT-2's attention dropout (attn_pdrop " +
                                 std::to_string(p) + "), which the fused backend does not have; add "
                                 "model.arch.attn_pdrop=0, or use impl: auto (materialized while training)"));
  if (cfg.run.device != DeviceChoice::cuda) return;
  const int64_t hd = known_head_dim(model);
  if (hd <= 0) return;
  AttentionSpec s;
  s.Hq = s.Hkv = 1;
  s.d = hd;
  s.dv = o.variant == "differential" && o.preset == "paper" ? 2 * hd : hd;
  s.differential = o.variant == "differential";
  s.norm = o.norm == "linear" ? AttnNorm::linear : o.norm == "ramp" ? AttnNorm::ramp : AttnNorm::softmax;
  const std::string why = attention_backend_support(AttentionBackend::fused, s, Device::cuda, cfg.run.dtype);
  if (!why.empty())
    out.push_back(problem_at(cfg, "model.attention.impl", "model.attention.impl: fused on run.device: cuda: " + why +
                                                              "; use impl: auto (materialized where fused cannot run) "
                                                              "or impl: materialized"));
}

}  // namespace

std::vector<Problem> buildability_problems(const ExperimentConfig& cfg) {
  std::vector<Problem> out;
  arch_problems(cfg, out);
  attention_problems(cfg, out);
  decoder_problems(cfg, out);
  impl_problems(cfg, out);
  return out;
}

void check_buildable(const ExperimentConfig& cfg) {
  std::vector<Problem> p = buildability_problems(cfg);
  if (!p.empty()) throw ConfigError(std::move(p));
}

ExperimentConfig load_runnable_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  ExperimentConfig cfg = load_experiment(path, overrides);
  check_buildable(cfg);
  return cfg;
}

}  // namespace attnlab::config
