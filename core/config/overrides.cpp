// key.path=value overrides from the command line: parsed with the field's type, checked with
// the field's constraints, and applied on top of the file's values.
#include <cctype>

#include "core/config/load_state.h"

namespace attnlab::config {

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

void apply_one(const std::string& text, LoadState& st) {
  const std::string where = "command line: " + text;
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    st.fail("command line: '" + text + "'", "expected key.path=value (e.g. optim.lr=1e-4)");
    return;
  }
  const std::string path = trim(text.substr(0, eq));
  const std::string value_text = text.substr(eq + 1);
  if (st.skip_study_fields && st.is_study_path(path)) return;

  const FieldSpec* spec = st.schema.find(path);
  // model.arch.num_hidden_layers=4: one entry of a map field.
  const FieldSpec* map_spec = st.schema.find(parent_path(path));
  if (!spec && map_spec && map_spec->type == FieldType::string_map) {
    FieldState& fs = st.fields[map_spec->path];
    if (fs.source == Source::default_value) fs.value = map_spec->default_value;
    if (!std::holds_alternative<StringMap>(fs.value)) fs.value = StringMap{};  // the file's entry was unusable
    if (trim(value_text).empty()) {
      st.fail(where, "expected a value after '='");
      fs.bad = true;
      return;
    }
    std::get<StringMap>(fs.value)[leaf_name(path)] = trim(value_text);
    fs.source = Source::override_arg;
    fs.where = where;
    return;
  }
  if (!spec) {
    if (st.schema.is_section(path)) {
      const auto keys = st.schema.child_keys(path);
      st.fail(where, path + " is a section; override one of its keys instead, e.g. " + path + "." +
                         (keys.empty() ? std::string("key") : keys.front()) + "=...");
    } else {
      st.fail(where, unknown_key_message(st.schema, parent_path(path), leaf_name(path)));
    }
    return;
  }

  FieldState& fs = st.fields[path];
  fs.source = Source::override_arg;
  fs.where = where;
  Value v;
  std::string why;
  const std::string trimmed = trim(value_text);
  bool ok = true;
  if (spec->presence == Presence::optional && (trimmed == "null" || trimmed == "~")) {
    v = std::monostate{};
  } else if (spec->type == FieldType::string_map) {
    ok = false;
    why = path + " is a map; override one entry at a time: " + path + ".<key>=<value>";
  } else if (is_list(spec->type)) {
    ok = parse_list(spec->type, value_text, v, why);
  } else {
    ok = parse_scalar(spec->type, spec->type == FieldType::string || spec->type == FieldType::path ? value_text : trimmed,
                      v, why);
  }
  if (!ok) {
    st.fail(where, why);
    fs.bad = true;
    return;
  }
  std::vector<ValueProblem> problems = check_value(*spec, v);
  for (const ValueProblem& p : problems) st.fail(where, p.message);
  fs.bad = !problems.empty();
  fs.value = std::move(v);
}

}  // namespace

const std::string* study_override(const std::vector<std::string>& overrides, std::string& storage) {
  const std::string* found = nullptr;
  for (const std::string& o : overrides) {
    size_t eq = o.find('=');
    if (eq != std::string::npos && trim(o.substr(0, eq)) == "analysis.study") {
      storage = trim(o.substr(eq + 1));
      found = &storage;
    }
  }
  return found;
}

void apply_overrides(const std::vector<std::string>& overrides, LoadState& st) {
  for (const std::string& o : overrides) apply_one(o, st);
}

}  // namespace attnlab::config
