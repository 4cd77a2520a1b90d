// The strict experiment loader: walks the YAML tree against the schema, reads each value as
// its field's type, applies the overrides, fills defaults, checks the cross-field rules, and
// reports every problem of the file in one ConfigError.
//
// `base: other.yaml` (top level, relative to the file's folder) loads that file first and the
// file's own keys on top: sections merge key by key, map fields (model.arch) merge entry by entry,
// scalars and lists are replaced. A base may name its own base; a cycle is refused. Every value
// keeps the FILE:LINE:COLUMN of the file that holds it.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/config/experiment.h"
#include "core/config/load_state.h"
#include "core/config/override_blame.h"
#include "core/config/rules.h"
#include "core/config/suggest.h"

namespace attnlab::config {

namespace {

constexpr const char* kBaseKey = "base";

std::string where(const LoadState& st, const YAML::Mark& m) { return file_location(st.file, m.line, m.column); }

const char* node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

std::string expected_text(const FieldSpec& spec) {
  if (spec.type == FieldType::enumeration) return "one of " + join_words(spec.choices, ", ");
  if (is_list(spec.type)) return std::string("a ") + field_type_name(spec.type) + " like [1, 2]";
  if (spec.type == FieldType::string_map) return "a mapping of names to scalars";
  return field_type_name(spec.type);
}

bool read_string_map(const FieldSpec& spec, const YAML::Node& node, LoadState& st, Value& out) {
  StringMap m;
  std::map<std::string, YAML::Mark> seen;
  bool ok = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node& k = it->first;
    const YAML::Node& v = it->second;
    if (!k.IsScalar()) {
      st.fail(where(st, k.Mark()), spec.path + ": a key must be a name, got " + node_kind(k));
      ok = false;
      continue;
    }
    auto [prev, fresh] = seen.emplace(k.Scalar(), k.Mark());
    if (!fresh) {
      st.fail(where(st, k.Mark()), spec.path + ": duplicate key '" + k.Scalar() + "' (first at line " +
                                       std::to_string(prev->second.line + 1) + ")");
      ok = false;
      continue;
    }
    if (!v.IsScalar()) {
      st.fail(where(st, v.IsNull() ? k.Mark() : v.Mark()),
              spec.path + "." + k.Scalar() + ": expected a scalar, got " + node_kind(v));
      ok = false;
      continue;
    }
    m[k.Scalar()] = v.Scalar();
  }
  out = m;
  return ok;
}

bool read_list(const FieldSpec& spec, const YAML::Node& node, LoadState& st, Value& out,
               std::vector<std::string>& element_where) {
  const FieldType et = element_type(spec.type);
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  bool ok = true;
  size_t index = 0;
  for (const YAML::Node& e : node) {
    element_where.push_back(where(st, e.IsNull() ? node.Mark() : e.Mark()));
    if (!e.IsScalar()) {
      st.fail(where(st, e.IsNull() ? node.Mark() : e.Mark()), spec.path + ": element " + std::to_string(index) +
                                                                   ": expected " + field_type_name(et) + ", got " +
                                                                   node_kind(e));
      ok = false;
    } else {
      Value v;
      std::string why;
      if (!parse_scalar(et, e.Scalar(), v, why)) {
        st.fail(where(st, e.Mark()), spec.path + ": element " + std::to_string(index) + ": " + why);
        ok = false;
      } else if (et == FieldType::integer) {
        ints.push_back(std::get<int64_t>(v));
      } else if (et == FieldType::floating) {
        floats.push_back(std::get<double>(v));
      } else {
        strings.push_back(std::get<std::string>(v));
      }
    }
    ++index;
  }
  if (et == FieldType::integer) out = ints;
  else if (et == FieldType::floating) out = floats;
  else out = strings;
  return ok;
}

// Reads one field's value node; reports type problems and the field's own constraint
// problems; records the value as given by the file.
void read_field(const FieldSpec& spec, const YAML::Node& key, const YAML::Node& node, LoadState& st) {
  FieldState& fs = st.fields[spec.path];
  // A map field a base file already gave: this file's entries go on top of the base's.
  StringMap from_base;
  if (spec.type == FieldType::string_map && fs.source == Source::file && std::holds_alternative<StringMap>(fs.value))
    from_base = std::get<StringMap>(fs.value);
  fs.source = Source::file;
  fs.where = where(st, key.Mark());
  // A null value has no position of its own in yaml-cpp; point at its key.
  const std::string value_where = node.IsNull() ? fs.where : where(st, node.Mark());
  auto bad = [&](const std::string& msg) {
    st.fail(value_where, spec.path + ": " + msg);
    fs.bad = true;
  };

  Value v;
  std::vector<std::string> element_where;  // where each list element is
  if (node.IsNull()) {
    if (spec.presence != Presence::optional)
      return bad("no value given; expected " + expected_text(spec) + " (remove the key to use the default)");
    fs.value = std::monostate{};
    return;
  }
  if (spec.type == FieldType::string_map) {
    if (!node.IsMap()) return bad("expected " + expected_text(spec) + ", got " + node_kind(node));
    if (!read_string_map(spec, node, st, v)) { fs.bad = true; return; }
    for (const auto& [k, text] : std::get<StringMap>(v)) from_base[k] = text;
    v = std::move(from_base);
  } else if (is_list(spec.type)) {
    if (!node.IsSequence()) return bad("expected " + expected_text(spec) + ", got " + node_kind(node));
    if (!read_list(spec, node, st, v, element_where)) { fs.bad = true; return; }
  } else {
    if (!node.IsScalar()) return bad("expected " + expected_text(spec) + ", got " + node_kind(node));
    std::string why;
    if (!parse_scalar(spec.type, node.Scalar(), v, why)) return bad(why);
  }
  for (const ValueProblem& p : check_value(spec, v)) {
    const bool at_element = p.element >= 0 && size_t(p.element) < element_where.size();
    st.fail(at_element ? element_where[size_t(p.element)] : value_where, spec.path + ": " + p.message);
    fs.bad = true;
  }
  fs.value = std::move(v);
}

void walk_mapping(const YAML::Node& map, const std::string& prefix, LoadState& st) {
  std::map<std::string, YAML::Mark> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node& key = it->first;
    const YAML::Node& value = it->second;
    if (!key.IsScalar()) {
      st.fail(where(st, key.Mark()), "a key must be a name, got " + std::string(node_kind(key)));
      continue;
    }
    const std::string name = key.Scalar();
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    auto [prev, fresh] = seen.emplace(name, key.Mark());
    if (!fresh) {
      st.fail(where(st, key.Mark()),
              "duplicate key '" + path + "' (first at line " + std::to_string(prev->second.line + 1) + ")");
      if (const auto f = st.fields.find(path); f != st.fields.end()) f->second.bad = true;
      continue;
    }
    if ((st.skip_study_fields || st.file_study_set_aside) && st.is_study_path(path)) continue;
    if (prefix.empty() && name == kBaseKey) continue;  // read by load_chain
    if (name.find('.') != std::string::npos) {  // one spelling per field in files: nested keys
      st.fail(where(st, key.Mark()), unknown_key_message(st.schema, prefix, name));
      continue;
    }
    if (const FieldSpec* spec = st.schema.find(path)) {
      read_field(*spec, key, value, st);
    } else if (st.schema.is_section(path)) {
      st.section_where[path] = where(st, key.Mark());
      if (value.IsNull()) continue;  // "optim:" with nothing under it: all defaults
      if (!value.IsMap()) {
        st.fail(where(st, value.Mark()), path + " is a section; expected a mapping of its keys (" +
                                             join_words(st.schema.child_keys(path), ", ") + "), got " +
                                             node_kind(value));
        continue;
      }
      walk_mapping(value, path, st);
    } else {
      st.fail(where(st, key.Mark()), unknown_key_message(st.schema, prefix, name));
    }
  }
}

// The study a file selects (nullopt: it does not say), looked up before the walk because it
// decides the schema.
std::optional<std::string> file_study(const YAML::Node& root) {
  if (!root.IsMap()) return std::nullopt;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->first.IsScalar() || it->first.Scalar() != "analysis" || !it->second.IsMap()) continue;
    for (auto jt = it->second.begin(); jt != it->second.end(); ++jt)
      if (jt->first.IsScalar() && jt->first.Scalar() == "study" && jt->second.IsScalar()) return jt->second.Scalar();
  }
  return std::nullopt;
}

// Parses the YAML text; a syntax error, an empty file or a second document is a problem.
bool parse_document(const std::string& text, const std::string& file, std::vector<Problem>& problems,
                    YAML::Node& root) {
  auto fail = [&](std::string at, std::string msg) { problems.push_back({std::move(at), std::move(msg)}); };
  auto at = [&](const YAML::Mark& m) { return file_location(file, m.line, m.column); };
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    fail(at(e.mark), "YAML syntax error: " + e.msg);
    return false;
  }
  if (docs.empty() || docs[0].IsNull()) {
    fail(file + ":1:1", "the file holds no config; expected a mapping with task, run, model, data, ...");
    return false;
  }
  if (docs.size() > 1)
    fail(at(docs[1].Mark()), "a config is one YAML document; remove this second one (after ---)");
  root = docs[0];
  if (!root.IsMap()) {
    fail(at(root.Mark()), std::string("expected a mapping with task, run, model, ... at the top, got ") + node_kind(root));
    return false;
  }
  return true;
}

// One parsed file of a base chain.
struct ConfigDoc {
  std::string name;  // as reported in FILE:LINE:COLUMN
  YAML::Node root;
};

// The file and the bases it names, in that order (the walk applies them last to first). Returns false
// when one of them cannot be used (unreadable, not YAML, a cycle): its problem is reported at the
// `base:` value that names it, or in the file itself.
bool load_chain(const std::string& text, const std::string& name, std::vector<Problem>& problems,
                std::vector<ConfigDoc>& chain) {
  namespace fs = std::filesystem;
  std::vector<std::string> visited;  // the files read so far, as absolute paths
  std::string cur_text = text, cur_name = name;
  bool ok = true;
  while (true) {
    YAML::Node root;
    if (!parse_document(cur_text, cur_name, problems, root)) {
      ok = false;
      break;
    }
    chain.push_back({cur_name, root});
    std::error_code ec;
    visited.push_back(fs::weakly_canonical(fs::absolute(cur_name, ec), ec).string());
    auto base_it = root.begin();
    while (base_it != root.end() && !(base_it->first.IsScalar() && base_it->first.Scalar() == kBaseKey)) ++base_it;
    if (base_it == root.end()) break;
    const YAML::Node key_node = base_it->first, value = base_it->second;
    // A null value has no position of its own in yaml-cpp; point at its key.
    const YAML::Mark mark = value.IsNull() ? key_node.Mark() : value.Mark();
    const std::string at = file_location(cur_name, mark.line, mark.column);
    if (!value.IsScalar() || value.Scalar().empty()) {
      problems.push_back({at, "base: expected the name of another experiment file (relative to this one), e.g. "
                              "base: standard.yaml"});
      ok = false;
      break;
    }
    const fs::path base = fs::path(cur_name).parent_path() / value.Scalar();
    const std::string canonical = fs::weakly_canonical(fs::absolute(base, ec), ec).string();
    if (std::find(visited.begin(), visited.end(), canonical) != visited.end()) {
      std::string cycle;
      for (const ConfigDoc& d : chain) cycle += d.name + " -> ";
      problems.push_back({at, "base: '" + value.Scalar() + "' makes a cycle (" + cycle + base.string() +
                                  "); a file cannot be its own base. Fix: remove one of these base: keys"});
      ok = false;
      break;
    }
    std::ifstream in(base, std::ios::binary);
    if (!in) {
      problems.push_back({at, "base: cannot read '" + base.string() + "': " + std::strerror(errno) +
                                  " (the path is relative to the folder of " + cur_name + ")"});
      ok = false;
      break;
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    cur_text = contents.str();
    cur_name = base.lexically_normal().string();
  }
  // Not reversed in place: assigning one YAML::Node to another rebinds the node it refers to.
  return ok;
}

// Fills defaults, reports missing required fields, builds the resolved list and stores every
// good value into the typed structs.
void resolve(LoadState& st, ExperimentConfig& cfg) {
  const StudySchema* study = st.schema.study();
  if (study) cfg.analysis.fields = study->make_default();
  for (const FieldSpec* spec : st.schema.fields()) {
    FieldState& fs = st.fields[spec->path];
    if (fs.source == Source::default_value) {
      if (spec->presence == Presence::defaulted) {
        fs.value = spec->default_value;
      } else if (spec->presence == Presence::required) {
        if (!st.file_unusable && !(st.skip_study_fields && st.is_study_path(spec->path)))
          st.fail(st.where_for(spec->path), "missing required key '" + spec->path + "': " + spec->doc);
        fs.bad = true;
      }
    }
    cfg.resolved.add({spec->path, spec->type, fs.value, fs.source,
                      fs.source == Source::default_value ? std::string() : fs.where});
    if (fs.bad) continue;
    void* target = spec->in_study ? static_cast<void*>(&cfg.analysis.fields) : static_cast<void*>(&cfg);
    if (spec->in_study && !study) continue;
    spec->store(target, fs.value);
  }
}

void check_rules(const LoadState& st, const ExperimentConfig& cfg, std::vector<Problem>& problems) {
  RuleContext ctx{cfg, cfg.resolved};
  for (const CrossFieldRule& rule : cross_field_rules()) {
    bool readable = true;
    for (const std::string& p : rule.reads) {
      auto it = st.fields.find(p);
      readable = readable && it != st.fields.end() && !it->second.bad;
    }
    if (!readable) continue;  // a field it reads already has a problem of its own
    std::optional<Violation> v = rule.check(ctx);
    if (!v) continue;
    // Point at the override that took part, else at the first blamed field that was written
    // somewhere, else at its section (override_blame.h).
    const ProblemPlace place = place_problem(cfg.resolved, st.schema, v->blame, rule.reads);
    const std::string at =
        !place.where.empty() ? place.where : st.where_for(v->blame.empty() ? std::string() : v->blame.front());
    problems.push_back({at, v->message + place.note});
  }
}

}  // namespace

ExperimentConfig load_experiment_text(const std::string& yaml_text, const std::string& display_name,
                                      const std::vector<std::string>& overrides) {
  std::vector<Problem> early;
  std::vector<ConfigDoc> chain;
  const bool parsed = load_chain(yaml_text, display_name, early, chain);

  // The study decides which analysis fields exist, so it is looked up first (the file's own
  // choice wins over its bases', the command line's over both).
  std::string storage;
  const std::string* from_cli = study_override(overrides, storage);
  // The study the files name (the file's own over its bases'), and the one in force.
  std::string in_file = kNoStudy;
  for (auto d = chain.rbegin(); d != chain.rend(); ++d)
    if (auto s = file_study(d->root)) in_file = *s;
  const std::string study_name = from_cli ? *from_cli : in_file;
  const StudySchema* study = find_study(study_name);

  Schema schema(study);
  LoadState st(display_name, schema);
  st.problems = early;
  st.file_unusable = !parsed;
  st.skip_study_fields = study_name != kNoStudy && study == nullptr;
  // analysis.study=none (or another study) on the command line sets the files' study aside, and
  // with it their analysis fields, which belong to that study.
  st.file_study_set_aside = in_file != kNoStudy && study_name != in_file;
  if (parsed)
    for (auto d = chain.rbegin(); d != chain.rend(); ++d) {  // the last base first
      st.file = d->name;
      walk_mapping(d->root, "", st);
    }
  st.file = display_name;
  apply_overrides(overrides, st);

  ExperimentConfig cfg;
  cfg.source = display_name;
  for (const ConfigDoc& d : chain) cfg.resolved.add_file(d.name);
  resolve(st, cfg);
  if (!st.file_unusable) check_rules(st, cfg, st.problems);
  if (!st.problems.empty()) throw ConfigError(st.problems);
  return cfg;
}

ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({{path, std::string("cannot read the config file: ") + std::strerror(errno)}});
  std::ostringstream text;
  text << in.rdbuf();
  return load_experiment_text(text.str(), path, overrides);
}

}  // namespace attnlab::config
