#pragma once
// Resuming a run checks that it is the same run: the resolved config saved in the checkpoint's
// trainer state must match the one asked for, apart from how long the run goes and how it reports
// (run length, logging, evaluation and checkpoint cadence, profiling, the rank layout). Anything
// else (model, data, optimizer, schedule shape, seed, device, ...) would silently continue another
// experiment in its folder, so the trainer refuses before any work unless the user asks for it.
#include <string>
#include <vector>

#include "core/config/resolved.h"

namespace attnlab::train {

// True for the fields a resumed run may change (run length and reporting).
bool resume_may_change(const std::string& path);

struct ConfigChange {
  std::string path;
  std::string before, now;  // formatted values; "(not in the saved config)" for a new field
  std::string text() const { return path + ": " + before + " -> " + now; }
};

// Every field whose value differs between the saved and the requested config (checkpoint.resume
// excepted: it is how the resume was asked for).
std::vector<ConfigChange> config_changes(const config::ResolvedConfig& saved, const config::ResolvedConfig& now);

// The changes a resume may not make without --continue-changed.
std::vector<ConfigChange> forbidden_changes(const std::vector<ConfigChange>& all);

}  // namespace attnlab::train
