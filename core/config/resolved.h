#pragma once
// Every field of a loaded experiment with its final value and where that value came from.
// This is what gets printed, saved into run folders and hashed.
#include <string>
#include <vector>

#include "core/config/value.h"

namespace attnlab::config {

enum class Source : uint8_t { default_value, file, override_arg };
const char* source_name(Source s);  // "default", "file", "override"

struct ResolvedField {
  std::string path;
  FieldType type = FieldType::string;
  Value value;      // unset (monostate) for an optional field left unset
  Source source = Source::default_value;
  std::string where;  // "exp.yaml:4:3" (the key) or "command line: optim.lr=1e-4"; "" for defaults
};

class ResolvedConfig {
 public:
  void add(ResolvedField f) { fields_.push_back(std::move(f)); }
  // In registry order: top-level fields, then the sections in their fixed order.
  const std::vector<ResolvedField>& fields() const { return fields_; }
  const ResolvedField* find(const std::string& path) const;
  const ResolvedField& at(const std::string& path) const;  // throws for an unknown path
  // True when the value came from the file or the command line (not from the default).
  bool is_given(const std::string& path) const { return at(path).source != Source::default_value; }
  // The experiment file, then the base files it names in turn (`base:`); one name without bases.
  void add_file(std::string name) { files_.push_back(std::move(name)); }
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<ResolvedField> fields_;
  std::vector<std::string> files_;
};

}  // namespace attnlab::config
