#include "support/subprocess.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>

namespace attnlab::test {

ProcessResult run_process(const std::string& command, int limit_s) {
  ProcessResult r;
  const std::string full = "timeout -k 5 " + std::to_string(limit_s) + " " + command + " 2>&1";
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

int run_command(const std::string& command, std::string& output, int limit_s) {
  ProcessResult r = run_process(command, limit_s);
  output = std::move(r.output);
  return r.exit_code;
}

std::string mpirun_prefix(int np) {
  std::string cmd = "mpirun --oversubscribe -np " + std::to_string(np);
  if (::getuid() == 0) cmd += " --allow-run-as-root";
  return cmd;
}

}  // namespace attnlab::test
