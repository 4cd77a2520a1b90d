#include "studies/registry.h"

#include "studies/icl/icl_study.h"
#include "studies/needle/needle_study.h"

namespace attnlab::studies {

const std::vector<std::shared_ptr<const Study>>& builtin_studies() {
  static const std::vector<std::shared_ptr<const Study>> studies = {
      needle_study(),  // answer_to_noise: `attnlab analyze needle` (METHODS §3.6–§3.7)
      icl_study(),     // icl: `attnlab icl <command> FILE` (METHODS §2; tools/attnlab/cmd_icl.cpp)
  };
  return studies;
}

std::shared_ptr<const Study> find_builtin_study(const std::string& name) {
  for (const auto& s : builtin_studies())
    if (s->name() == name) return s;
  return nullptr;
}

void install_builtin_studies() {
  for (const auto& s : builtin_studies()) install_study(s);
}

}  // namespace attnlab::studies
