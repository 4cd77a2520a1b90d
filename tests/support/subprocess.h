#pragma once
// Running other processes from tests: a shell command with a hard time limit (a hung child fails
// the test instead of hanging the suite), and the mpirun prefix that works in CI (root, 2 cores).
#include <string>

namespace attnlab::test {

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
  double seconds = 0;
};

// `command` through sh under coreutils `timeout -k 5 limit_s`.
ProcessResult run_process(const std::string& command, int limit_s = 60);

// The same, returning the exit code and filling `output` with stdout and stderr.
int run_command(const std::string& command, std::string& output, int limit_s = 600);

// "mpirun --oversubscribe -np N" (+ --allow-run-as-root as root: OpenMPI refuses root otherwise;
// --oversubscribe: more ranks than the CI's cores).
std::string mpirun_prefix(int np);

}  // namespace attnlab::test
