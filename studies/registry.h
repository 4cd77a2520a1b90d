#pragma once
// The studies attnlab ships. builtin_studies() is an explicit list (one line per study) rather
// than self-registering objects: a static library's object file that nothing references is left
// out by the linker, and its static initialisers with it.
#include <memory>
#include <string>
#include <vector>

#include "studies/study.h"

namespace attnlab::studies {

// Every builtin study, in the order `attnlab analyze --help` lists their commands.
const std::vector<std::shared_ptr<const Study>>& builtin_studies();
// The builtin study analysis.study `name` selects; null when none.
std::shared_ptr<const Study> find_builtin_study(const std::string& name);
// install_study() for every builtin study (idempotent): the CLI does it at start-up, before any
// experiment file is loaded; tests before loading a config that selects a study.
void install_builtin_studies();

}  // namespace attnlab::studies
