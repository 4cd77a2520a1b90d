#pragma once
// The field registry: every field of every section, in one fixed order. The loader, the
// overrides, `attnlab config fields` and the resolved-config printer all read it.
#include <deque>
#include <string>
#include <vector>

#include "core/config/analysis_config.h"
#include "core/config/field.h"

namespace attnlab::config {

struct SectionInfo {
  std::string name;
  std::string doc;
};

// The sections, in the order of the printed config.
const std::vector<SectionInfo>& config_sections();

// The core fields: the top-level task and every section's fields except analysis.study and
// the study fields (those depend on which studies are registered). Built and checked once.
const std::deque<FieldSpec>& core_fields();

// The fields one load works with: the core fields, then analysis.study (whose choices are the
// studies registered now), then the fields of the selected study, if any.
class Schema {
 public:
  explicit Schema(const StudySchema* study = nullptr);
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  const std::vector<const FieldSpec*>& fields() const { return fields_; }
  const FieldSpec* find(const std::string& path) const;
  // True for a section or subsection: a proper prefix of some field path ("model.attention").
  bool is_section(const std::string& path) const;
  // The keys allowed directly under `prefix` ("" for the top level), in schema order.
  std::vector<std::string> child_keys(const std::string& prefix) const;
  // Every field and section path, for did-you-mean across sections.
  std::vector<std::string> all_paths() const;
  const StudySchema* study() const { return study_; }

 private:
  std::deque<FieldSpec> own_;  // analysis.study
  std::vector<const FieldSpec*> fields_;
  const StudySchema* study_;
};

// The parent path of a dotted path ("" for a top-level key) and its last component.
std::string parent_path(const std::string& path);
std::string leaf_name(const std::string& path);

}  // namespace attnlab::config
