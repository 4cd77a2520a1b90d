#include "core/config/printer.h"

#include <cstdio>
#include <sstream>

#include "core/config/registry.h"
#include "core/config/rules.h"
#include "core/config/suggest.h"

namespace attnlab::config {

namespace {

constexpr size_t kCommentColumn = 44;

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

std::string section_doc(const std::string& name) {
  for (const auto& s : config_sections())
    if (s.name == name) return s.doc;
  return "";
}

void line_with_comment(std::ostringstream& out, const std::string& text, const std::string& comment) {
  out << text;
  if (!comment.empty()) out << std::string(text.size() < kCommentColumn ? kCommentColumn - text.size() : 2, ' ') << "# " << comment;
  out << "\n";
}

}  // namespace

std::string print_resolved(const ResolvedConfig& resolved) {
  std::ostringstream out;
  out << "# attnlab resolved experiment config: every field with its final value; the comment on\n"
         "# each line says where the value came from (default, file or override).\n"
         "# config hash: "
      << config_hash_hex(resolved) << "\n";
  const bool chained = resolved.files().size() > 1;
  if (chained) {
    out << "# files: " << resolved.files().front();
    for (size_t i = 1; i < resolved.files().size(); ++i) out << ", base " << resolved.files()[i];
    out << "\n";
  }
  std::vector<std::string> open;  // the sections the previous field sat in
  for (const ResolvedField& f : resolved.fields()) {
    std::vector<std::string> parts = split_path(f.path);
    std::vector<std::string> sections(parts.begin(), parts.end() - 1);
    size_t common = 0;
    while (common < open.size() && common < sections.size() && open[common] == sections[common]) ++common;
    for (size_t depth = common; depth < sections.size(); ++depth) {
      if (depth == 0) out << "\n# " << section_doc(sections[0]) << "\n";
      out << std::string(2 * depth, ' ') << sections[depth] << ":\n";
    }
    open = sections;
    line_with_comment(out, std::string(2 * sections.size(), ' ') + parts.back() + ": " + format_value(f.value),
                      chained && f.source == Source::file ? "file " + f.where : std::string(source_name(f.source)));
  }
  return out.str();
}

uint64_t config_hash(const ResolvedConfig& resolved) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ull;  // FNV-1a 64 prime
    }
  };
  for (const ResolvedField& f : resolved.fields()) mix(f.path + "=" + format_value(f.value) + "\n");
  return h;
}

std::string config_hash_hex(const ResolvedConfig& resolved) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(config_hash(resolved)));
  return buf;
}

namespace {

std::string describe_default(const FieldSpec& f) {
  switch (f.presence) {
    case Presence::required: return "required";
    case Presence::optional: return "optional (unset by default)";
    case Presence::defaulted: return "default " + format_value(f.default_value);
  }
  return "";
}

void print_field(std::ostringstream& out, const FieldSpec& f) {
  std::string head = "  " + f.path + "  " + field_type_name(f.type) + ", " + describe_default(f);
  std::string constraints = describe_constraints(f);
  if (!constraints.empty()) head += ", " + constraints;
  out << head << "\n      " << f.doc << "\n";
}

bool in_section(const std::string& path, const std::string& section) {
  return path == section || path.rfind(section + ".", 0) == 0;
}

}  // namespace

std::string describe_constraints(const FieldSpec& f) {
  std::vector<std::string> parts;
  if (f.type == FieldType::enumeration) parts.push_back("one of " + join_words(f.choices, " | "));
  if (!f.range.empty()) {
    const std::string bounds = f.range.text(element_type(f.type) == FieldType::integer);
    const bool interval = f.range.lo && f.range.hi;
    parts.push_back(std::string(is_list(f.type) ? "each " : "") + (interval ? "in " : "") + bounds);
  }
  if (f.list_length) parts.push_back("exactly " + std::to_string(*f.list_length) + " values");
  if (!f.check_doc.empty()) parts.push_back(f.check_doc);
  return join_words(parts, "; ");
}

std::string print_field_reference(const std::string& section) {
  bool known = section.empty() || section == "task";
  for (const auto& s : config_sections()) known = known || s.name == section;
  if (!known) {
    std::vector<std::string> names = {"task"};
    for (const auto& s : config_sections()) names.push_back(s.name);
    FAIL_WITH("unknown config section '", section, "'; the sections are ", join_words(names, ", "));
  }
  Schema schema;
  std::ostringstream out;
  if (section.empty())
    out << "attnlab experiment config: the fields of an experiment YAML file, by section.\n"
           "Set a field in the file (optim:\\n  lr: 1e-4) or on the command line (optim.lr=1e-4).\n"
           "Lists: [1, 2] in YAML, [1,2] or 1,2 on the command line.\n";
  for (const FieldSpec* f : schema.fields())
    if (parent_path(f->path).empty() && (section.empty() || section == f->path)) {
      out << "\n";
      print_field(out, *f);
    }
  for (const auto& s : config_sections()) {
    if (!section.empty() && section != s.name) continue;
    out << "\n" << s.name << ": " << s.doc << "\n";
    for (const FieldSpec* f : schema.fields())
      if (in_section(f->path, s.name)) print_field(out, *f);
    if (s.name != "analysis") continue;
    if (registered_studies().empty()) out << "  (no study has registered analysis fields)\n";
    for (const auto& study : registered_studies()) {
      out << "  with analysis.study: " << study->name << " (" << study->doc << ")\n";
      for (const FieldSpec& f : study->fields) print_field(out, f);
    }
  }
  out << "\nCross-field rules:\n";
  size_t listed = 0;
  for (const CrossFieldRule& r : cross_field_rules()) {
    bool relevant = section.empty();
    for (const auto& p : r.reads) relevant = relevant || in_section(p, section);
    if (!relevant) continue;
    out << "  - " << r.summary << "\n";
    ++listed;
  }
  if (listed == 0) out << "  (none reads this section)\n";
  return out.str();
}

}  // namespace attnlab::config
