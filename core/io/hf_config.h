#pragma once
// Hugging Face `config.json` for the architectures attnlab runs: GPT-2 (model_type "gpt2"),
// Qwen2 / Qwen2.5 ("qwen2") and Qwen3 ("qwen3").
//
// The typed fields below are what the models need, under one set of names for every
// architecture. The file itself is kept verbatim (`raw`, key order included), so keys attnlab
// does not know survive a load/save round trip, and typed fields are written back only where
// they changed. An "attnlab" object in the file is attnlab's own extension block (e.g.
// {"attention": {...}} to select an attention variant on top of pretrained weights); it is
// carried in `attnlab` and saved back, and transformers ignores it.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace attnlab {

enum class ModelArch : uint8_t { gpt2, qwen2, qwen3 };
// The HF model_type: "gpt2", "qwen2", "qwen3".
const char* model_type_name(ModelArch a);

struct ModelConfig {
  ModelArch arch = ModelArch::gpt2;
  int64_t hidden_size = 0;              // D        gpt2: n_embd
  int64_t num_layers = 0;               // L        gpt2: n_layer;  qwen: num_hidden_layers
  int64_t num_heads = 0;                // Hq       gpt2: n_head;   qwen: num_attention_heads
  int64_t num_kv_heads = 0;             // Hkv      gpt2: = Hq;     qwen: num_key_value_heads
  int64_t head_dim = 0;                 // d        gpt2 and qwen2 without head_dim: D / Hq
  int64_t intermediate_size = 0;        // MLP width; gpt2: n_inner, 4·D when null or absent
  int64_t vocab_size = 0;               // V, embedding rows (may exceed the tokenizer's count)
  int64_t max_position_embeddings = 0;  // gpt2: n_positions
  double norm_eps = 0;                  // gpt2: layer_norm_epsilon (LayerNorm); qwen: rms_norm_eps
  double rope_theta = 0;                // qwen only; 0 for GPT-2 (learned positions)
  // Pairs of the rotation: false = rotate-half (i, i + d/2), HF's Qwen; true = interleaved (2i, 2i+1),
  // set by the from-scratch differential decoders with rope (METHODS §3.5). Not a config.json key.
  bool rope_interleaved = false;
  std::string activation;               // gpt2: activation_function ("gelu_new"); qwen: hidden_act ("silu")
  bool tie_word_embeddings = true;      // lm_head shares the embedding matrix (HF default: gpt2 true, qwen false)
  bool attention_bias = true;           // q/k/v biases: implied for gpt2 and qwen2; qwen3: attention_bias
  bool qk_norm = false;                 // per-head RMSNorm of q and k before RoPE: implied for qwen3
  std::string torch_dtype;              // "bfloat16", ...; "" when absent ("dtype" in newer files)
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;   // config.json holds one id or a list
  nlohmann::ordered_json attnlab;       // the "attnlab" extension block; null when absent
  nlohmann::ordered_json raw;           // the file as read (null for a config built in code)
  std::string source;                   // path or label, for messages
};

// A config for `a` with the flags and defaults transformers implies (activation, tied embeddings,
// q/k/v biases, q/k norm) and zero sizes, for building tiny models in code.
ModelConfig model_config_defaults(ModelArch a);

// Parses config.json text. Throws one attnlab::Error naming `source` and listing every missing
// or mistyped key, an unknown model_type (with the supported ones), or unsupported settings.
ModelConfig parse_hf_config(const std::string& text, const std::string& source);
ModelConfig load_hf_config(const std::string& path);

// The JSON to save: `raw` with the typed fields written back where they differ from it (a config
// built in code gets every key transformers needs, including "architectures").
nlohmann::ordered_json hf_config_json(const ModelConfig& c);
// Writes hf_config_json(c), indented by 2, via a temporary file renamed over `path`.
void save_hf_config(const std::string& path, const ModelConfig& c);

}  // namespace attnlab
