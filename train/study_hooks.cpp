#include "train/study_hooks.h"

#include <map>

#include "core/error.h"

namespace attnlab::train {

namespace {
std::map<std::string, StudyHooksMaker>& makers() {
  static std::map<std::string, StudyHooksMaker> m;
  return m;
}
}  // namespace

void add_study_hooks(const std::string& study, StudyHooksMaker make) { makers()[study] = std::move(make); }

bool has_study_hooks(const std::string& study) { return makers().count(study) != 0; }

std::unique_ptr<StudyHooks> make_study_hooks(const StudyRun& run) {
  if (!run.cfg.analysis.active()) return nullptr;
  auto it = makers().find(run.cfg.analysis.study);
  if (it == makers().end())
    FAIL_WITH("analysis.study ", run.cfg.analysis.study,
              ": this program cannot run that study during training (its hooks are not installed). Fix: "
              "analysis.study=none to train without it");
  return it->second(run);
}

}  // namespace attnlab::train
