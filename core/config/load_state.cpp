#include "core/config/load_state.h"

#include "core/config/suggest.h"

namespace attnlab::config {

std::string LoadState::where_for(const std::string& path) const {
  auto it = fields.find(path);
  if (it != fields.end() && it->second.source != Source::default_value) return it->second.where;
  for (std::string p = parent_path(path); !p.empty(); p = parent_path(p)) {
    auto s = section_where.find(p);
    if (s != section_where.end()) return s->second;
  }
  return file + ":1:1";
}

bool LoadState::is_study_path(const std::string& path) const {
  return path.rfind("analysis.", 0) == 0 && path != "analysis.study";
}

namespace {

std::string quoted_list(const std::vector<std::string>& words) {
  std::string s;
  for (size_t i = 0; i < words.size(); ++i) s += (i ? ", " : "") + ("'" + words[i] + "'");
  return s;
}

}  // namespace

std::string unknown_key_message(const Schema& schema, const std::string& prefix, const std::string& key) {
  std::string msg = prefix.empty() ? "unknown top-level key '" + key + "'" : "unknown key '" + key + "' in " + prefix;
  const std::vector<std::string> paths = schema.all_paths();
  // "optim.lr: 1e-4" in the file: dotted paths are the command line's spelling, not YAML's.
  const std::string as_path = prefix.empty() ? key : prefix + "." + key;
  if (key.find('.') != std::string::npos && (schema.find(as_path) || schema.is_section(as_path))) {
    const std::string parent = parent_path(as_path);
    return msg + "; in YAML, nest it: " + parent + ": {" + leaf_name(as_path) + ": ...} (dotted paths are for " +
           "command-line overrides)";
  }
  auto join = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };

  // 1. The same name in another section: a key put in the wrong place.
  std::vector<std::string> misplaced;
  for (const auto& p : paths)
    if (leaf_name(p) == key && parent_path(p) != prefix) misplaced.push_back(p);
  if (!misplaced.empty()) {
    if (misplaced.size() == 1) return msg + "; did you mean '" + misplaced[0] + "'?";
    return msg + "; did you mean one of " + quoted_list(misplaced) + "?";
  }
  // 2. A typo of a key of this section.
  const std::vector<std::string> siblings = schema.child_keys(prefix);
  if (auto near = closest_word(key, siblings)) return msg + "; did you mean '" + join(*near) + "'?";
  // With no study selected, analysis holds only `study`: say why the key is unknown.
  if (prefix == "analysis" && !schema.study()) {
    std::vector<std::string> names;
    for (const auto& s : registered_studies()) names.push_back(s->name);
    return msg + "; analysis.study is none, so the section holds no study fields (registered studies: " +
           (names.empty() ? std::string("none yet") : join_words(names, ", ")) + ")";
  }
  // 3. A typo of a key of another section.
  std::vector<std::string> leaves;
  for (const auto& p : paths) leaves.push_back(leaf_name(p));
  if (auto near = closest_word(key, leaves))
    for (const auto& p : paths)
      if (leaf_name(p) == *near) return msg + "; did you mean '" + p + "'?";
  if (siblings.empty()) return msg + " (it has no keys)";
  return msg + "; " + (prefix.empty() ? std::string("the top-level keys are ") : prefix + "'s keys are ") +
         join_words(siblings, ", ");
}

}  // namespace attnlab::config
