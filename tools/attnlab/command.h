#pragma once
// Subcommands register themselves: each file defines a setup function that adds its
// CLI11 subcommand (options, --help text, callback) to the root app.
#include <CLI/CLI.hpp>

#include <vector>

#include "core/error.h"

namespace attnlab::cli {

using CommandSetup = void (*)(CLI::App& root);
std::vector<CommandSetup>& command_setups();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup f) { command_setups().push_back(f); }
};

// `attnlab eval <what>`: the evaluation group. Files that add an evaluation (eval gsm8k, eval lm, ...)
// take the group from here, whichever of them registers first creates it.
inline CLI::App& eval_command(CLI::App& root) {
  try {
    return *root.get_subcommand("eval");
  } catch (const CLI::OptionNotFound&) {
    CLI::App* g = root.add_subcommand("eval", "Evaluate trained models on held-out data (one subcommand per benchmark)");
    g->require_subcommand(1);
    return *g;
  }
}

// A callback's way to end the program with a status (CLI11 turns it into the exit code).
[[noreturn]] inline void exit_with(int code) { throw CLI::RuntimeError(code); }

}  // namespace attnlab::cli

// ARG_CHECK(cond, parts...): a bad command-line argument found by a command's own checks (a
// value outside its choices, options that exclude each other). Reported like CLI11's own
// validation errors, with exit status 2 (exit_codes.h), not as a runtime failure.
#define ARG_CHECK(cond, ...)                                                          \
  do {                                                                                \
    if (!(cond)) throw ::CLI::ValidationError(::attnlab::detail::cat(__VA_ARGS__)); \
  } while (0)

#define ATTNLAB_COMMAND(fn) static ::attnlab::cli::CommandRegistrar attnlab_cmd_##fn(&fn)
