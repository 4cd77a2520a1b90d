#include "core/layers/attention_layer.h"


#include "core/layers/differential_attention.h"
#include "core/layers/named_registry.h"
#include "core/layers/standard_attention.h"
#include "core/layers/two_pass_attention.h"

namespace attnlab {

namespace {

// The variants compiled into attnlab. Each new variant adds its line here (see the header for why
// a static initialiser in its own file would not do).
void builtin_attention_variants(std::map<std::string, AttentionFactory>& r) {
  r["standard"] = make_standard_attention;
  r["differential"] = make_differential_attention;
  r["two_pass"] = make_two_pass_attention;
}

NamedRegistry<AttentionFactory>& registry() {
  static NamedRegistry<AttentionFactory> r("attention variant", builtin_attention_variants);
  return r;
}

std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void register_attention_variant(const std::string& name, AttentionFactory factory) {
  registry().add(name, std::move(factory));
}

std::vector<std::string> attention_variant_names() { return registry().names(); }

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
  const AttentionFactory factory = registry().find(variant);
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
