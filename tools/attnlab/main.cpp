// attnlab: one executable, one subcommand per job. `attnlab --help` lists them.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <exception>

#include "core/error.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
std::vector<CommandSetup>& command_setups() {
  static std::vector<CommandSetup> v;
  return v;
}
}  // namespace attnlab::cli

// libgomp reads OMP_WAIT_POLICY once, when it is loaded (before main). Idle OpenMP threads that
// spin take the cores from OpenBLAS's own GEMM threads on small CPUs (training steps 4x slower on
// 2 cores), so attnlab re-executes itself once with the passive policy unless the user chose one.
static void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}

int main(int argc, char** argv) {
  prefer_passive_openmp(argv);
  CLI::App app{
      "attnlab: train and dissect attention variants in decoder language models.\n"
      "Runs on one GPU, many GPUs, or the CPU (a machine with no GPU or no driver uses the CPU).\n"
      "Start with `attnlab info`, then `attnlab <command> --help`."};
  app.set_version_flag("--version", std::string("attnlab ") + ATTNLAB_VERSION);
  app.require_subcommand(1);
  app.footer(attnlab::cli::kExitCodeTable);
  for (auto setup : attnlab::cli::command_setups()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own status (command.h: exit_with)
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" of status 0; every other parse error (an unknown option,
    // a missing or invalid argument: CLI11's 105, 106, 109, ...) is a bad command line.
    const int printed = app.exit(e);
    return printed == 0 ? attnlab::cli::kExitOk : attnlab::cli::kExitBadInput;
  } catch (const attnlab::UsageError& e) {
    std::fprintf(stderr, "attnlab: error: %s\n", e.message().c_str());
    return attnlab::cli::kExitBadInput;
  } catch (const attnlab::Error& e) {
    // The message alone: a source location or a C++ expression means nothing to a user (both are
    // in what(), printed with ATTNLAB_LOG=debug).
    const char* level = std::getenv("ATTNLAB_LOG");
    const bool debug = level && std::string(level) == "debug";
    std::fprintf(stderr, "attnlab: error: %s\n", debug ? e.what() : e.message().c_str());
    return attnlab::cli::kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab: error: %s\n", e.what());
    return attnlab::cli::kExitFailure;
  }
  return attnlab::cli::kExitOk;
}
