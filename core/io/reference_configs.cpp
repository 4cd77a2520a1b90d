#include "core/io/reference_configs.h"

#include <algorithm>

#include "core/config/attention_options.h"
#include "core/config/suggest.h"
#include "core/error.h"
#include "core/io/hf_config.h"

namespace attnlab {

using ojson = nlohmann::ordered_json;

const std::vector<std::string>& reference_architectures() {
  static const std::vector<std::string> a = {"gpt2", "qwen2", "qwen3"};
  return a;
}

ojson reference_config_json(const std::string& arch) {
  if (arch == "gpt2")
    return ojson{{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"activation_function", "gelu_new"},
                 {"attn_pdrop", 0.1}, {"embd_pdrop", 0.1}, {"resid_pdrop", 0.1}, {"initializer_range", 0.02},
                 {"layer_norm_epsilon", 1e-5}, {"n_embd", 768}, {"n_head", 12}, {"n_layer", 12},
                 {"n_positions", 1024}, {"n_ctx", 1024}, {"n_inner", nullptr}, {"vocab_size", 50257},
                 {"bos_token_id", 50256}, {"eos_token_id", 50256}, {"tie_word_embeddings", true}};
  if (arch == "qwen2")
    return ojson{{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"hidden_act", "silu"},
                 {"attention_dropout", 0.0}, {"initializer_range", 0.02}, {"rms_norm_eps", 1e-6},
                 {"rope_theta", 1000000.0}, {"use_sliding_window", false}, {"vocab_size", 151936},
                 {"bos_token_id", 151643}, {"eos_token_id", 151643}, {"tie_word_embeddings", true},
                 {"hidden_size", 896}, {"intermediate_size", 4864}, {"num_hidden_layers", 24},
                 {"num_attention_heads", 14}, {"num_key_value_heads", 2}, {"max_position_embeddings", 32768}};
  if (arch == "qwen3")
    return ojson{{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_act", "silu"},
                 {"attention_dropout", 0.0}, {"initializer_range", 0.02}, {"rms_norm_eps", 1e-6},
                 {"rope_theta", 1000000.0}, {"use_sliding_window", false}, {"vocab_size", 151936},
                 {"bos_token_id", 151643}, {"eos_token_id", 151643}, {"tie_word_embeddings", true},
                 {"hidden_size", 1024}, {"intermediate_size", 3072}, {"num_hidden_layers", 28},
                 {"num_attention_heads", 16}, {"num_key_value_heads", 8}, {"head_dim", 128},
                 {"attention_bias", false}, {"max_position_embeddings", 32768}};
  FAIL_WITH("init:", arch, ": attnlab has no reference config for this architecture; it builds gpt2, qwen2 and "
            "qwen3 (and the from-scratch decoders decoder_paper, decoder_seed in experiments)");
}

void make_tiny_config(ojson& c, const std::string& arch) {
  if (arch == "gpt2") {
    c["n_embd"] = 64;
    c["n_head"] = 4;
    c["n_layer"] = 2;
    return;
  }
  c["hidden_size"] = 64;
  c["intermediate_size"] = 128;
  c["num_hidden_layers"] = 2;
  c["num_attention_heads"] = 4;
  c["num_key_value_heads"] = 2;
  c["max_position_embeddings"] = 4096;
  if (arch == "qwen3") c["head_dim"] = 16;
}

std::vector<std::string> overridable_config_keys(const std::string& arch) {
  std::vector<std::string> keys;
  const ojson ref = reference_config_json(arch);
  for (auto it = ref.begin(); it != ref.end(); ++it) keys.push_back(it.key());
  // Read by the parser but absent from the reference file.
  const std::vector<std::string> extra =
      arch == "gpt2" ? std::vector<std::string>{"scale_attn_weights", "scale_attn_by_inverse_layer_idx", "torch_dtype",
                                                "dtype"}
                     : std::vector<std::string>{"head_dim", "attention_bias", "rope_scaling", "rope_parameters",
                                                "torch_dtype", "dtype", "sliding_window", "max_window_layers"};
  for (const auto& k : extra)
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  return keys;
}

std::string config_override_problem(const std::string& arch, const std::string& key) {
  if (key.rfind("attnlab.", 0) == 0) {
    const std::string rest = key.substr(8);
    std::vector<std::string> options;
    for (const AttentionOptionDecl& d : attention_option_decls())
      if (d.user_facing) options.push_back("attnlab.attention." + d.name);
    if (rest == "attention" || std::find(options.begin(), options.end(), key) != options.end()) return "";
    std::string msg = "'" + key + "' is not an attnlab option; the options are " + config::join_words(options, ", ");
    if (auto near = config::closest_word(key, options)) msg += "; did you mean '" + *near + "'?";
    return msg;
  }
  const std::vector<std::string> keys = overridable_config_keys(arch);
  if (std::find(keys.begin(), keys.end(), key) != keys.end()) return "";
  std::string msg = "'" + key + "' is not a config.json key of " + arch;
  if (auto near = config::closest_word(key, keys)) msg += "; did you mean '" + *near + "'?";
  msg += " (" + arch + " takes " + config::join_words(keys, ", ") + ")";
  return msg;
}

std::string hf_config_shape_problem(const ojson& json, const std::string& source) {
  ModelConfig c;
  try {
    c = parse_hf_config(json.dump(), source);
  } catch (const Error& e) {
    return e.what();
  }
  const bool gpt2 = c.arch == ModelArch::gpt2;
  const char* heads = gpt2 ? "n_head" : "num_attention_heads";
  const char* width = gpt2 ? "n_embd" : "hidden_size";
  if (c.num_heads <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.vocab_size <= 0)
    return "every size must be positive";
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    return std::string(heads) + " (" + std::to_string(c.num_heads) + ") must be a multiple of num_key_value_heads (" +
           std::to_string(c.num_kv_heads) + ")";
  if (gpt2 && c.num_heads * c.head_dim != c.hidden_size)
    return std::string(heads) + " (" + std::to_string(c.num_heads) + ") must divide " + width + " (" +
           std::to_string(c.hidden_size) + ")";
  if (!gpt2 && !json.contains("head_dim") && c.hidden_size % c.num_heads != 0)
    return std::string(heads) + " (" + std::to_string(c.num_heads) + ") must divide " + width + " (" +
           std::to_string(c.hidden_size) + "), or set head_dim";
  if (c.head_dim % 2 != 0 && c.rope_theta > 0) return "head_dim must be even for RoPE, got " + std::to_string(c.head_dim);
  return "";
}

}  // namespace attnlab
