#include "core/config/resolved.h"

#include "core/error.h"

namespace attnlab::config {

const char* source_name(Source s) {
  switch (s) {
    case Source::default_value: return "default";
    case Source::file: return "file";
    case Source::override_arg: return "override";
  }
  return "?";
}

const ResolvedField* ResolvedConfig::find(const std::string& path) const {
  for (const auto& f : fields_)
    if (f.path == path) return &f;
  return nullptr;
}

const ResolvedField& ResolvedConfig::at(const std::string& path) const {
  const ResolvedField* f = find(path);
  CHECK(f != nullptr, "config: no field '", path, "' in the resolved config");
  return *f;
}

}  // namespace attnlab::config
