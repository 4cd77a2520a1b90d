#include "core/config/override_blame.h"

#include <algorithm>
#include <cctype>

namespace attnlab::config {

namespace {

bool overridden(const ResolvedConfig& r, const std::string& path) {
  const ResolvedField* f = r.find(path);
  return f && f->source == Source::override_arg;
}

// How the command line unsets a field a file set: "path=null", or "path=<default>" ("" when neither).
std::string unset_spelling(const FieldSpec& spec) {
  if (spec.presence == Presence::optional) return spec.path + "=null";
  if (!spec.has_default) return "";
  std::string v = format_value(spec.default_value);
  v.erase(std::remove(v.begin(), v.end(), ' '), v.end());  // one shell word: [1,2]
  return spec.path + "=" + v;
}

bool is_path_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

}  // namespace

ProblemPlace place_problem(const ResolvedConfig& resolved, const Schema& schema, const std::vector<std::string>& blame,
                           const std::vector<std::string>& reads) {
  ProblemPlace p;
  std::string cause;
  for (const auto* list : {&blame, &reads})
    for (const std::string& path : *list)
      if (cause.empty() && overridden(resolved, path)) cause = path;
  if (cause.empty()) {
    for (const std::string& path : blame) {
      const ResolvedField* f = resolved.find(path);
      if (p.where.empty() && f && f->source != Source::default_value) p.where = f->where;
    }
    return p;
  }
  p.where = resolved.at(cause).where;
  for (const std::string& path : blame) {
    const ResolvedField* f = resolved.find(path);
    if (path == cause || !f || f->source != Source::file) continue;
    const FieldSpec* spec = schema.find(path);
    const std::string unset = spec ? unset_spelling(*spec) : std::string();
    p.note += " (" + path + " is set at " + f->where +
              (unset.empty() ? std::string(")") : "; add " + unset + " to the command line to unset it)");
  }
  return p;
}

std::vector<std::string> fields_named_in(const std::string& message, const Schema& schema) {
  std::vector<std::string> out;
  for (const FieldSpec* f : schema.fields())
    for (size_t at = message.find(f->path); at != std::string::npos; at = message.find(f->path, at + 1)) {
      const size_t end = at + f->path.size();
      if ((at == 0 || !is_path_char(message[at - 1])) && (end == message.size() || !is_path_char(message[end]) ||
                                                          (message[end] == '.' && (end + 1 == message.size() ||
                                                                                   !is_path_char(message[end + 1]))))) {
        out.push_back(f->path);
        break;
      }
    }
  return out;
}

}  // namespace attnlab::config
