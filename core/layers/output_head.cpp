#include "core/layers/output_head.h"

#include <map>
#include <mutex>

#include "core/layers/lm_head.h"

namespace attnlab {

namespace {

using Registry = std::map<std::string, OutputHeadFactory>;

void builtin_output_heads(Registry& r) { r["lm_head"] = make_lm_head; }

Registry& registry() {
  static Registry r = [] {
    Registry init;
    builtin_output_heads(init);
    return init;
  }();
  return r;
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::string joined() {
  std::string s;
  for (const auto& n : output_head_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

const nlohmann::ordered_json& head_options(const ModelConfig& c) {
  static const nlohmann::ordered_json null_json;
  if (!c.attnlab.is_object() || !c.attnlab.contains("head")) return null_json;
  return c.attnlab["head"];
}

}  // namespace

void register_output_head(const std::string& kind, OutputHeadFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  CHECK(!kind.empty() && factory, "register_output_head: a head needs a name and a factory");
  CHECK(!registry().count(kind), "output head '", kind, "' is registered twice");
  registry()[kind] = std::move(factory);
}

std::vector<std::string> output_head_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& [name, f] : registry()) names.push_back(name);
  return names;
}

std::string output_head_kind(const ModelConfig& c) {
  const auto& o = head_options(c);
  if (o.is_null()) return "lm_head";
  INPUT_CHECK(o.is_object() && o.contains("kind") && o["kind"].is_string(), "config '", c.source,
              "': attnlab.head must be an object with a \"kind\" (one of ", joined(), "), got ", o.dump());
  return o["kind"].get<std::string>();
}

std::unique_ptr<OutputHead> make_output_head(const OutputHeadArgs& args) {
  const std::string kind = output_head_kind(args.config);
  OutputHeadFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(kind);
    if (it != registry().end()) factory = it->second;
  }
  INPUT_CHECK(factory, "config '", args.config.source, "': unknown output head '", kind,
              "' in attnlab.head.kind; registered heads: ", joined());
  return factory(args);
}

}  // namespace attnlab
