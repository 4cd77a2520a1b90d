#include "core/io/hf_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "core/error.h"

namespace attnlab {

using ojson = nlohmann::ordered_json;

const char* model_type_name(ModelArch a) {
  switch (a) {
    case ModelArch::gpt2: return "gpt2";
    case ModelArch::qwen2: return "qwen2";
    case ModelArch::qwen3: return "qwen3";
  }
  return "?";
}

namespace {

const char* architectures_name(ModelArch a) {
  switch (a) {
    case ModelArch::gpt2: return "GPT2LMHeadModel";
    case ModelArch::qwen2: return "Qwen2ForCausalLM";
    case ModelArch::qwen3: return "Qwen3ForCausalLM";
  }
  return "?";
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Reads typed keys and collects every problem, so one error can list them all. A null value
// counts as absent (HF writes null for "use the default").
struct KeyReader {
  const ojson& j;
  std::vector<std::string> missing, mistyped;

  const ojson* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  void wrong(const char* key, const ojson& v, const char* want) {
    mistyped.push_back(std::string(key) + " (" + v.type_name() + ", expected " + want + ")");
  }
  std::optional<int64_t> opt_int(const char* key) {
    const ojson* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))) {
      wrong(key, *v, "an integer");
      return std::nullopt;
    }
    return v->get<int64_t>();
  }
  std::optional<double> opt_double(const char* key) {
    const ojson* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) {
      wrong(key, *v, "a number");
      return std::nullopt;
    }
    return v->get<double>();
  }
  std::optional<bool> opt_bool(const char* key) {
    const ojson* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) {
      wrong(key, *v, "true or false");
      return std::nullopt;
    }
    return v->get<bool>();
  }
  std::optional<std::string> opt_string(const char* key) {
    const ojson* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) {
      wrong(key, *v, "a string");
      return std::nullopt;
    }
    return v->get<std::string>();
  }
  int64_t req_int(const char* key) {
    if (!find(key)) missing.push_back(key);
    return opt_int(key).value_or(0);
  }
  double req_double(const char* key) {
    if (!find(key)) missing.push_back(key);
    return opt_double(key).value_or(0);
  }
};

void read_gpt2(KeyReader& r, ModelConfig& c, std::vector<std::string>& unsupported) {
  c.hidden_size = r.req_int("n_embd");
  c.num_layers = r.req_int("n_layer");
  c.num_heads = r.req_int("n_head");
  c.max_position_embeddings = r.req_int("n_positions");
  c.vocab_size = r.req_int("vocab_size");
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.intermediate_size = r.opt_int("n_inner").value_or(4 * c.hidden_size);
  c.norm_eps = r.opt_double("layer_norm_epsilon").value_or(1e-5);
  c.activation = r.opt_string("activation_function").value_or("gelu_new");
  c.tie_word_embeddings = r.opt_bool("tie_word_embeddings").value_or(true);
  c.attention_bias = true;
  c.qk_norm = false;
  c.rope_theta = 0;
  if (!r.opt_bool("scale_attn_weights").value_or(true))
    unsupported.push_back("scale_attn_weights = false (attnlab always scales scores by 1/sqrt(d))");
  if (r.opt_bool("scale_attn_by_inverse_layer_idx").value_or(false))
    unsupported.push_back("scale_attn_by_inverse_layer_idx = true");
}

// RoPE: transformers < 5 writes a top-level rope_theta (and rope_scaling for the scaled kinds);
// transformers >= 5 writes rope_parameters {rope_type, rope_theta, ...}. Both are read; any
// rope_type other than "default" is refused, since attnlab implements plain RoPE only.
void read_rope(KeyReader& r, ModelConfig& c, std::vector<std::string>& unsupported) {
  auto scaled = [&](const ojson& params, const char* where) {
    auto t = params.find("rope_type");
    if (t == params.end()) t = params.find("type");
    const std::string kind = t != params.end() && t->is_string() ? t->get<std::string>() : "";
    if (kind != "default")
      unsupported.push_back(std::string(where) + " with rope_type '" + kind +
                            "' (attnlab implements plain RoPE only)");
  };
  if (const ojson* s = r.find("rope_scaling")) {
    if (s->is_object()) scaled(*s, "rope_scaling");
    else unsupported.push_back("rope_scaling (attnlab implements plain RoPE only)");
  }
  const ojson* p = r.find("rope_parameters");
  if (r.find("rope_theta") || !p) {
    c.rope_theta = r.req_double("rope_theta");
    return;
  }
  if (!p->is_object()) {
    r.wrong("rope_parameters", *p, "an object");
    return;
  }
  scaled(*p, "rope_parameters");
  KeyReader inner{*p};
  c.rope_theta = inner.req_double("rope_theta");
  for (const auto& m : inner.missing) r.missing.push_back("rope_parameters." + m);
  for (const auto& m : inner.mistyped) r.mistyped.push_back("rope_parameters." + m);
}

void read_qwen(KeyReader& r, ModelConfig& c, std::vector<std::string>& unsupported) {
  const bool qwen3 = c.arch == ModelArch::qwen3;
  c.hidden_size = r.req_int("hidden_size");
  c.intermediate_size = r.req_int("intermediate_size");
  c.num_layers = r.req_int("num_hidden_layers");
  c.num_heads = r.req_int("num_attention_heads");
  c.num_kv_heads = r.req_int("num_key_value_heads");
  c.vocab_size = r.req_int("vocab_size");
  c.max_position_embeddings = r.req_int("max_position_embeddings");
  c.norm_eps = r.req_double("rms_norm_eps");
  read_rope(r, c, unsupported);
  // Qwen3's HF default head_dim (128) differs from D/Hq; a file without it is suspect, so require it.
  if (qwen3) c.head_dim = r.req_int("head_dim");
  else c.head_dim = r.opt_int("head_dim").value_or(c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.activation = r.opt_string("hidden_act").value_or("silu");
  c.tie_word_embeddings = r.opt_bool("tie_word_embeddings").value_or(false);
  c.attention_bias = qwen3 ? r.opt_bool("attention_bias").value_or(false) : true;
  c.qk_norm = qwen3;
  if (r.opt_bool("use_sliding_window").value_or(false))
    unsupported.push_back("use_sliding_window = true (attnlab attends to every earlier position)");
}

void check_values(const ModelConfig& c, bool head_dim_given, std::vector<std::string>& bad) {
  auto positive = [&](const char* what, int64_t v) {
    if (v <= 0) bad.push_back(detail::cat(what, " = ", v, " (must be positive)"));
  };
  positive("hidden size", c.hidden_size);
  positive("layers", c.num_layers);
  positive("attention heads", c.num_heads);
  positive("key/value heads", c.num_kv_heads);
  positive("intermediate size", c.intermediate_size);
  positive("vocab_size", c.vocab_size);
  positive("max positions", c.max_position_embeddings);
  if (c.num_heads > 0 && c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads != 0)
    bad.push_back(detail::cat("attention heads ", c.num_heads, " is not a multiple of key/value heads ", c.num_kv_heads));
  if (!head_dim_given && c.num_heads > 0 && c.hidden_size % c.num_heads != 0)
    bad.push_back(detail::cat("hidden size ", c.hidden_size, " is not a multiple of attention heads ", c.num_heads));
  if (head_dim_given) positive("head_dim", c.head_dim);
  if (!(c.norm_eps > 0)) bad.push_back(detail::cat("norm epsilon ", c.norm_eps, " (must be positive)"));
  if (c.arch != ModelArch::gpt2 && !(c.rope_theta > 0))
    bad.push_back(detail::cat("rope_theta ", c.rope_theta, " (must be positive)"));
}

}  // namespace

ModelConfig model_config_defaults(ModelArch a) {
  ModelConfig c;
  c.arch = a;
  c.source = std::string("defaults for ") + model_type_name(a);
  if (a == ModelArch::gpt2) {
    c.norm_eps = 1e-5;
    c.activation = "gelu_new";
    c.tie_word_embeddings = true;
    c.attention_bias = true;
  } else {
    c.norm_eps = 1e-6;
    c.rope_theta = 1e6;
    c.activation = "silu";
    c.tie_word_embeddings = false;
    c.attention_bias = a == ModelArch::qwen2;
    c.qk_norm = a == ModelArch::qwen3;
  }
  return c;
}

ModelConfig parse_hf_config(const std::string& text, const std::string& source) {
  ModelConfig c;
  c.source = source;
  try {
    c.raw = ojson::parse(text);
  } catch (const ojson::parse_error& e) {
    FAIL_WITH("config '", source, "': not valid JSON at byte ", e.byte, " (", e.what(), "). Fix: repair or re-download config.json");
  }
  if (!c.raw.is_object())
    FAIL_WITH("config '", source, "': the file is a JSON ", c.raw.type_name(), ", expected an object");
  KeyReader r{c.raw, {}, {}};
  auto model_type = r.opt_string("model_type");
  if (!model_type) {
    FAIL_WITH("config '", source, "': ", r.mistyped.empty() ? "key model_type is missing" : "model_type is not a string",
              "; attnlab supports model_type gpt2, qwen2, qwen3. Fix: use the config.json that came with the checkpoint");
  }
  if (*model_type == "gpt2") c.arch = ModelArch::gpt2;
  else if (*model_type == "qwen2") c.arch = ModelArch::qwen2;
  else if (*model_type == "qwen3") c.arch = ModelArch::qwen3;
  else
    FAIL_WITH("config '", source, "': unknown model_type '", *model_type,
              "'; attnlab supports gpt2, qwen2 (Qwen2 and Qwen2.5), qwen3");

  std::vector<std::string> unsupported, bad;
  if (c.arch == ModelArch::gpt2) read_gpt2(r, c, unsupported);
  else read_qwen(r, c, unsupported);
  c.torch_dtype = r.opt_string(r.find("dtype") ? "dtype" : "torch_dtype").value_or("");
  c.bos_token_id = r.opt_int("bos_token_id");
  if (const ojson* eos = r.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const auto& e : *eos)
        if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
        else { r.wrong("eos_token_id", *eos, "an integer or a list of integers"); break; }
    } else if (auto id = r.opt_int("eos_token_id")) {
      c.eos_token_ids.push_back(*id);
    }
  }
  if (auto it = c.raw.find("attnlab"); it != c.raw.end()) {
    if (!it->is_object()) r.wrong("attnlab", *it, "an object");
    else if (it->contains("attention") && !(*it)["attention"].is_object()) r.wrong("attnlab.attention", (*it)["attention"], "an object");
    else c.attnlab = *it;
  }

  std::ostringstream os;
  if (!r.missing.empty()) os << " missing keys: " << join(r.missing) << ";";
  if (!r.mistyped.empty()) os << " wrong types: " << join(r.mistyped) << ";";
  if (os.tellp() == 0) {
    const bool head_dim_given = c.arch != ModelArch::gpt2 && r.find("head_dim");
    check_values(c, head_dim_given, bad);
    if (!bad.empty()) os << " invalid values: " << join(bad) << ";";
    if (!unsupported.empty()) os << " settings attnlab does not implement: " << join(unsupported) << ";";
  }
  if (os.tellp() != 0)
    FAIL_WITH("config '", source, "' (model_type ", *model_type, "):", os.str(),
              " Fix: use the config.json that came with the checkpoint, or add the keys listed");
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) FAIL_WITH("config '", path, "': cannot open (", std::strerror(errno), "). Fix: check the path");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_hf_config(ss.str(), path);
}

namespace {

template <class T>
bool json_holds(const ojson& v) {
  if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
  else if constexpr (std::is_same_v<T, std::string>) return v.is_string();
  else if constexpr (std::is_same_v<T, int64_t>) return v.is_number_integer();
  else return v.is_number();
}

// Writes `key` only where the file's value differs from `value` (so 1000000 stays 1000000 and
// does not become 1000000.0), and leaves an absent key absent when `value` is what it implies.
template <class T>
void put(ojson& j, const char* key, const T& value, const std::optional<T>& implied_when_absent) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (implied_when_absent && *implied_when_absent == value) return;
  } else if (json_holds<T>(*it) && it->template get<T>() == value) {
    return;
  }
  j[key] = value;
}

}  // namespace

ojson hf_config_json(const ModelConfig& c) {
  ojson j = c.raw.is_object() ? c.raw : ojson::object();
  const std::string type = model_type_name(c.arch);
  if (!j.contains("architectures")) j["architectures"] = ojson::array({architectures_name(c.arch)});
  put<std::string>(j, "model_type", type, std::nullopt);
  const std::optional<int64_t> none;
  if (c.arch == ModelArch::gpt2) {
    CHECK(c.num_kv_heads == c.num_heads && c.attention_bias && !c.qk_norm && c.head_dim * c.num_heads == c.hidden_size,
          "config '", c.source, "': GPT-2 has Hkv = Hq, d = D/Hq, q/k/v biases and no q/k norm");
    put<int64_t>(j, "n_embd", c.hidden_size, none);
    put<int64_t>(j, "n_layer", c.num_layers, none);
    put<int64_t>(j, "n_head", c.num_heads, none);
    put<int64_t>(j, "n_positions", c.max_position_embeddings, none);
    put<int64_t>(j, "vocab_size", c.vocab_size, none);
    put<int64_t>(j, "n_inner", c.intermediate_size, 4 * c.hidden_size);
    put<double>(j, "layer_norm_epsilon", c.norm_eps, 1e-5);
    put<std::string>(j, "activation_function", c.activation, std::string("gelu_new"));
    put<bool>(j, "tie_word_embeddings", c.tie_word_embeddings, true);
  } else {
    const bool qwen3 = c.arch == ModelArch::qwen3;
    CHECK(c.qk_norm == qwen3 && (qwen3 || c.attention_bias), "config '", c.source,
          "': Qwen2 implies q/k/v biases and no q/k norm; Qwen3 implies q/k norm");
    put<int64_t>(j, "hidden_size", c.hidden_size, none);
    put<int64_t>(j, "intermediate_size", c.intermediate_size, none);
    put<int64_t>(j, "num_hidden_layers", c.num_layers, none);
    put<int64_t>(j, "num_attention_heads", c.num_heads, none);
    put<int64_t>(j, "num_key_value_heads", c.num_kv_heads, none);
    put<int64_t>(j, "head_dim", c.head_dim,
                 qwen3 || c.num_heads <= 0 ? none : std::optional<int64_t>(c.hidden_size / c.num_heads));
    put<int64_t>(j, "vocab_size", c.vocab_size, none);
    put<int64_t>(j, "max_position_embeddings", c.max_position_embeddings, none);
    put<double>(j, "rms_norm_eps", c.norm_eps, std::nullopt);
    // Keep the file's layout: transformers >= 5 nests rope_theta in rope_parameters.
    auto params = j.find("rope_parameters");
    if (!j.contains("rope_theta") && params != j.end() && params->is_object())
      put<double>(*params, "rope_theta", c.rope_theta, std::nullopt);
    else
      put<double>(j, "rope_theta", c.rope_theta, std::nullopt);
    put<std::string>(j, "hidden_act", c.activation, std::string("silu"));
    put<bool>(j, "tie_word_embeddings", c.tie_word_embeddings, false);
    if (qwen3) put<bool>(j, "attention_bias", c.attention_bias, false);
  }
  const char* dtype_key = j.contains("dtype") ? "dtype" : "torch_dtype";
  if (!c.torch_dtype.empty()) put<std::string>(j, dtype_key, c.torch_dtype, std::nullopt);
  else if (j.contains(dtype_key) && !j[dtype_key].is_null()) j[dtype_key] = nullptr;
  if (c.bos_token_id) put<int64_t>(j, "bos_token_id", *c.bos_token_id, std::nullopt);
  else if (j.contains("bos_token_id") && !j["bos_token_id"].is_null()) j["bos_token_id"] = nullptr;
  {
    auto it = j.find("eos_token_id");
    const bool absent = it == j.end() || it->is_null();
    const ojson ids(c.eos_token_ids);
    if (c.eos_token_ids.empty()) {
      if (!absent) j["eos_token_id"] = nullptr;
    } else {
      // The same ids, whether the file wrote one id bare or as a list, leave the file as it was.
      const bool same = !absent && ((it->is_array() && *it == ids) ||
                                    (c.eos_token_ids.size() == 1 && it->is_number_integer() &&
                                     it->get<int64_t>() == c.eos_token_ids[0]));
      if (!same) j["eos_token_id"] = c.eos_token_ids.size() == 1 ? ojson(c.eos_token_ids[0]) : ids;
    }
  }
  if (c.attnlab.is_null()) j.erase("attnlab");
  else j["attnlab"] = c.attnlab;
  return j;
}

void save_hf_config(const std::string& path, const ModelConfig& c) {
  const std::string text = hf_config_json(c).dump(2) + "\n";
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = detail::cat(path, ".tmp-", ::getpid(), "-", counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) FAIL_WITH("save config: cannot create '", tmp, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      FAIL_WITH("save config: writing '", tmp, "': ", std::strerror(e));
    }
    done += size_t(w);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (::close(fd) != 0 || !synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = synced ? errno : sync_errno;
    ::unlink(tmp.c_str());
    FAIL_WITH("save config: cannot write '", path, "': ", std::strerror(e));
  }
}

}  // namespace attnlab
