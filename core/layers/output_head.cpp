#include "core/layers/output_head.h"


#include "core/layers/backward_attention_head.h"
#include "core/layers/lm_head.h"
#include "core/layers/named_registry.h"

namespace attnlab {

namespace {

void builtin_output_heads(std::map<std::string, OutputHeadFactory>& r) {
  r["lm_head"] = make_lm_head;
  r["lm_head_untied"] = make_lm_head_untied;
  r["backward_head"] = make_backward_attention_head;
}

NamedRegistry<OutputHeadFactory>& registry() {
  static NamedRegistry<OutputHeadFactory> r("output head", builtin_output_heads);
  return r;
}

std::string joined() { return registry().joined_names(); }

const nlohmann::ordered_json& head_options(const ModelConfig& c) {
  static const nlohmann::ordered_json null_json;
  if (!c.attnlab.is_object() || !c.attnlab.contains("head")) return null_json;
  return c.attnlab["head"];
}

}  // namespace

void register_output_head(const std::string& kind, OutputHeadFactory factory) {
  registry().add(kind, std::move(factory));
}

std::vector<std::string> output_head_names() { return registry().names(); }

std::string output_head_kind(const ModelConfig& c) {
  const auto& o = head_options(c);
  if (o.is_null()) return "lm_head";
  INPUT_CHECK(o.is_object() && o.contains("kind") && o["kind"].is_string(), "config '", c.source,
              "': attnlab.head must be an object with a \"kind\" (one of ", joined(), "), got ", o.dump());
  return o["kind"].get<std::string>();
}

std::unique_ptr<OutputHead> make_output_head(const OutputHeadArgs& args) {
  const std::string kind = output_head_kind(args.config);
  const OutputHeadFactory factory = registry().find(kind);
  INPUT_CHECK(factory, "config '", args.config.source, "': unknown output head '", kind,
              "' in attnlab.head.kind; registered heads: ", joined());
  return factory(args);
}

}  // namespace attnlab
