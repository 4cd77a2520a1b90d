// attnlab analyze <command>: the standalone runs of the studies (studies/registry.h), one
// subcommand per study that has one, with options generated from the study's field tables.
// Also installs every builtin study at start-up, so that experiment files may select them
// (`analysis.study: <name>` in train, validate and config fields).
#include "studies/registry.h"
#include "studies/study_command.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

void setup(CLI::App& root) {
  studies::install_builtin_studies();
  CLI::App* analyze = root.add_subcommand("analyze", "Analyses of trained models (the studies' standalone runs)");
  analyze->require_subcommand(1);
  for (const auto& study : studies::builtin_studies()) studies::add_study_command(*analyze, study);
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
