#include "train/resume_check.h"

#include "core/config/value.h"

namespace attnlab::train {

namespace {

bool has_prefix(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

}  // namespace

bool resume_may_change(const std::string& path) {
  // Run length: the schedule follows the new step count (the trainer says so).
  if (path == "train.steps" || path == "train.epochs" || path == "train.max_tokens") return true;
  // Reporting: what is logged, evaluated, saved or profiled, and when; none of it changes a weight.
  if (has_prefix(path, "log.") || has_prefix(path, "profile.") || has_prefix(path, "checkpoint.")) return true;
  if (path == "eval.every_steps" || path == "eval.every_epochs" || path == "eval.batches") return true;
  // The rank layout and its transport: a checkpoint of N ranks resumes on M (README, loader.h).
  if (has_prefix(path, "distributed.")) return true;
  // Where the run folder lives: the checkpoint was found in it, so it is this run's folder.
  return path == "run.out_dir";
}

std::vector<ConfigChange> config_changes(const config::ResolvedConfig& saved, const config::ResolvedConfig& now) {
  std::vector<ConfigChange> out;
  for (const config::ResolvedField& f : now.fields()) {
    if (f.path == "checkpoint.resume") continue;
    const config::ResolvedField* old = saved.find(f.path);
    const std::string v_now = config::format_value(f.value);
    // A field newer than the checkpoint, left at its default, is the behaviour the run had.
    if (!old && f.source != config::Source::default_value) out.push_back({f.path, "(not in the saved config)", v_now});
    else if (old && config::format_value(old->value) != v_now) out.push_back({f.path, config::format_value(old->value), v_now});
  }
  return out;
}

std::vector<ConfigChange> forbidden_changes(const std::vector<ConfigChange>& all) {
  std::vector<ConfigChange> out;
  for (const ConfigChange& c : all)
    if (!resume_may_change(c.path)) out.push_back(c);
  return out;
}

}  // namespace attnlab::train
