// attnlab validate FILE [key=value ...]: load an experiment config strictly and print it
// resolved, or print every problem and exit 2.
// attnlab config fields [--section S]: the field reference (every field, default, range, doc).
#include <cstdio>
#include <string>
#include <vector>

#include "core/config/buildable.h"
#include "core/config/experiment.h"
#include "core/config/printer.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
namespace {

struct ValidateOptions {
  std::string file;
  std::vector<std::string> overrides;
  bool quiet = false;
};

void run_validate(const ValidateOptions& o) {
  try {
    config::ExperimentConfig cfg = config::load_runnable_experiment(o.file, o.overrides);
    if (o.quiet) return;
    std::fputs(config::print_resolved(cfg.resolved).c_str(), stdout);
  } catch (const config::ConfigError& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "%s\n", p.text().c_str());
    std::fprintf(stderr, "attnlab: %zu problem%s in %s\n", e.problems().size(), e.problems().size() == 1 ? "" : "s",
                 o.file.c_str());
    exit_with(kExitBadInput);
  }
}

void setup(CLI::App& root) {
  auto opts = std::make_shared<ValidateOptions>();
  auto* v = root.add_subcommand(
      "validate",
      "Check an experiment YAML without running it: print the resolved config (every field, its value and "
      "whether it came from the default, the file or an override), or every problem as FILE:LINE:COLUMN: "
      "message and exit 2. `attnlab config fields` lists every field.");
  v->add_option("file", opts->file, "experiment YAML file")->required();
  v->add_option("overrides", opts->overrides, "key.path=value overrides, applied after the file (e.g. optim.lr=1e-4)");
  v->add_flag("-q,--quiet", opts->quiet, "print nothing when the config is valid");
  v->callback([opts] { run_validate(*opts); });

  auto section = std::make_shared<std::string>();
  auto* c = root.add_subcommand("config", "Experiment-config reference");
  c->require_subcommand(1);
  auto* f = c->add_subcommand("fields",
                              "List every config field: dotted path, type, default, range or choices, and what it "
                              "does, then the cross-field rules");
  f->add_option("--section", *section, "only this section (run, model, data, train, optim, ...)");
  f->callback([section] { std::fputs(config::print_field_reference(*section).c_str(), stdout); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
