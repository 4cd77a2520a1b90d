#pragma once
// A study's standalone command, built from its field tables (studies/study.h):
// `<parent> <command.name>` gets one option per field — the command's own fields first, then the
// analysis fields except the .training_only() ones — with the field's doc, constraints and default
// as its help. The command line's values are read with the same parsing and checks as the YAML
// file and the key=value overrides (types, ranges, choices, list syntax "0,0.5" or "[0, 0.5]"), a
// field not given takes its declared default, and run_standalone gets both structs filled.
//
//   CLI::App* analyze = root.add_subcommand("analyze", "...");
//   for (const auto& s : studies::builtin_studies()) studies::add_study_command(*analyze, s);
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "studies/study.h"

namespace attnlab::studies {

// Adds the study's command under `parent` and returns it; null when the study has none.
CLI::App* add_study_command(CLI::App& parent, std::shared_ptr<const Study> study);

// A field's flag on the standalone command: "--context-length" for context_length, the flag the
// field names with .cli(), or "" for a .training_only() field.
std::string option_flag(const config::FieldSpec& f);

}  // namespace attnlab::studies
