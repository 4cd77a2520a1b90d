#pragma once
// Subcommands register themselves: each file defines a setup function that adds its
// CLI11 subcommand (options, --help text, callback) to the root app.
#include <CLI/CLI.hpp>

#include <vector>

namespace attnlab::cli {

using CommandSetup = void (*)(CLI::App& root);
std::vector<CommandSetup>& command_setups();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup f) { command_setups().push_back(f); }
};

// A callback's way to end the program with a status (CLI11 turns it into the exit code).
[[noreturn]] inline void exit_with(int code) { throw CLI::RuntimeError(code); }

}  // namespace attnlab::cli

#define ATTNLAB_COMMAND(fn) static ::attnlab::cli::CommandRegistrar attnlab_cmd_##fn(&fn)
