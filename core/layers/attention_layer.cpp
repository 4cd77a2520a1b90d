#include "core/layers/attention_layer.h"

#include <map>
#include <mutex>

#include "core/layers/differential_attention.h"
#include "core/layers/standard_attention.h"

namespace attnlab {

namespace {

using Registry = std::map<std::string, AttentionFactory>;

// The variants compiled into attnlab. Each new variant adds its line here (see the header for why
// a static initialiser in its own file would not do).
void builtin_attention_variants(Registry& r) {
  r["standard"] = make_standard_attention;
  r["differential"] = make_differential_attention;
}

Registry& registry() {
  static Registry r = [] {
    Registry init;
    builtin_attention_variants(init);
    return init;
  }();
  return r;
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void register_attention_variant(const std::string& name, AttentionFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  CHECK(!name.empty() && factory, "register_attention_variant: a variant needs a name and a factory");
  CHECK(!registry().count(name), "attention variant '", name, "' is registered twice");
  registry()[name] = std::move(factory);
}

std::vector<std::string> attention_variant_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& [name, f] : registry()) names.push_back(name);
  return names;
}

const nlohmann::ordered_json& attention_options(const ModelConfig& config) {
  static const nlohmann::ordered_json null_json;
  if (!config.attnlab.is_object()) return null_json;
  auto it = config.attnlab.find("attention");
  return it == config.attnlab.end() ? null_json : *it;
}

std::string attention_variant_of(const ModelConfig& config) {
  const auto& opts = attention_options(config);
  if (!opts.is_object() || !opts.contains("variant")) return "standard";
  const auto& v = opts["variant"];
  CHECK(v.is_string(), "config '", config.source, "': attnlab.attention.variant must be a string (one of ",
        join_names(attention_variant_names()), "), got ", v.dump());
  return v.get<std::string>();
}

std::unique_ptr<AttentionLayer> make_attention_layer(const AttentionLayerArgs& args) {
  const std::string variant = attention_variant_of(args.config);
  AttentionFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(variant);
    if (it != registry().end()) factory = it->second;
  }
  if (!factory)
    FAIL_WITH("config '", args.config.source, "': unknown attention variant '", variant,
              "' in attnlab.attention.variant; registered variants: ", join_names(attention_variant_names()));
  return factory(args);
}

void check_attention_option_keys(const nlohmann::ordered_json& options, const std::string& variant,
                                 const std::vector<std::string>& known, const std::string& source) {
  if (options.is_null()) return;
  CHECK(options.is_object(), "config '", source, "': attnlab.attention must be an object");
  std::vector<std::string> unknown;
  for (auto it = options.begin(); it != options.end(); ++it) {
    bool ok = false;
    for (const auto& k : known) ok = ok || it.key() == k;
    if (!ok) unknown.push_back(it.key());
  }
  if (!unknown.empty())
    FAIL_WITH("config '", source, "': attnlab.attention has key(s) ", join_names(unknown),
              " that the '", variant, "' attention variant does not take; it takes ", join_names(known));
}

}  // namespace attnlab
