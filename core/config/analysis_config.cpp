#include "core/config/analysis_config.h"

#include <cctype>

namespace attnlab::config {

namespace {
std::vector<std::unique_ptr<StudySchema>>& studies() {
  static std::vector<std::unique_ptr<StudySchema>> s;
  return s;
}
}  // namespace

const std::vector<std::unique_ptr<StudySchema>>& registered_studies() { return studies(); }

const StudySchema* find_study(const std::string& name) {
  for (const auto& s : studies())
    if (s->name == name) return s.get();
  return nullptr;
}

void add_study(std::unique_ptr<StudySchema> schema) {
  CHECK(!schema->name.empty() && schema->name != kNoStudy, "a study needs a name other than '", kNoStudy, "'");
  for (char c : schema->name)
    CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_', "study name '", schema->name,
          "': use letters, digits and _");
  CHECK(find_study(schema->name) == nullptr, "study '", schema->name, "' is registered twice");
  for (const FieldSpec& f : schema->fields) {
    CHECK(f.path != "analysis.study", "study '", schema->name, "' declares analysis.study, which selects the study");
    check_declaration(f);
  }
  studies().push_back(std::move(schema));
}

}  // namespace attnlab::config
