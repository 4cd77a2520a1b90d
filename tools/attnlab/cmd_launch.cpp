// attnlab launch --nproc N [--master-port P] -- <subcommand> [args...]: N local ranks of this
// attnlab binary, the way torchrun --nproc-per-node starts them, with prefixed output and
// fail-together semantics.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/rendezvous.h"
#include "core/error.h"
#include "tools/attnlab/command.h"

extern char** environ;

namespace attnlab::cli {
namespace {

struct LaunchOptions {
  int nproc = 0;
  int master_port = 0;  // 0: a free port picked at start
  double grace_s = 10;
  std::vector<std::string> command;
};

volatile sig_atomic_t g_signal = 0;
void on_signal(int s) { g_signal = s; }

// One line-splitting output stream of one rank.
struct Stream {
  int fd = -1;
  FILE* out = nullptr;
  std::string pending;
};

struct Rank {
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Stream streams[2];
};

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  CHECK(n > 0, "cannot find this executable (/proc/self/exe): ", std::strerror(errno));
  return std::string(buf, size_t(n));
}

// attnlab's own log already prefixes "[rank r] " in a multi-rank run: not twice.
void emit(int rank, FILE* out, const std::string& line) {
  const std::string prefix = "[rank " + std::to_string(rank) + "] ";
  std::string s = (line.rfind(prefix, 0) == 0 ? "" : prefix) + line + "\n";
  std::fwrite(s.data(), 1, s.size(), out);
  std::fflush(out);
}

// Reads what is available; returns false at EOF (or error).
bool pump(int rank, Stream& s) {
  char buf[8192];
  ssize_t n = ::read(s.fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    if (!s.pending.empty()) emit(rank, s.out, s.pending);
    s.pending.clear();
    ::close(s.fd);
    s.fd = -1;
    return false;
  }
  s.pending.append(buf, size_t(n));
  size_t start = 0, nl;
  while ((nl = s.pending.find('\n', start)) != std::string::npos) {
    emit(rank, s.out, s.pending.substr(start, nl - start));
    start = nl + 1;
  }
  s.pending.erase(0, start);
  return true;
}

// A child's whole process group: the rank and anything it started.
void signal_rank(const Rank& r, int sig) {
  if (r.running) ::kill(-r.pid, sig);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string status_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

int run_launch(const LaunchOptions& o) {
  if (o.nproc < 1) FAIL_WITH("--nproc must be at least 1, got ", o.nproc);
  if (o.command.empty())
    FAIL_WITH("nothing to launch: put the attnlab subcommand after --, e.g. `attnlab launch --nproc 2 -- dist selftest`");
  if (o.command[0] == "launch") FAIL_WITH("`attnlab launch` cannot launch itself");
  if (o.grace_s < 0) FAIL_WITH("--grace must not be negative, got ", o.grace_s);
  const std::string exe = self_exe();
  const int port = o.master_port ? o.master_port : dist::pick_free_loopback_port();

  // Everything the children need is built before fork: after it only exec-safe calls are made.
  std::vector<std::string> base_env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string k = kv.substr(0, kv.find('='));
    if (k == "RANK" || k == "WORLD_SIZE" || k == "LOCAL_RANK" || k == "LOCAL_WORLD_SIZE" || k == "MASTER_ADDR" ||
        k == "MASTER_PORT")
      continue;
    base_env.push_back(kv);
  }
  std::vector<std::string> argv_s = {exe};
  argv_s.insert(argv_s.end(), o.command.begin(), o.command.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: poll() returns early with EINTR
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);

  std::vector<Rank> ranks(size_t(o.nproc));
  const pid_t launcher = ::getpid();
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < o.nproc; ++r) {
    std::vector<std::string> env_s = base_env;
    env_s.push_back("RANK=" + std::to_string(r));
    env_s.push_back("WORLD_SIZE=" + std::to_string(o.nproc));
    env_s.push_back("LOCAL_RANK=" + std::to_string(r));
    env_s.push_back("LOCAL_WORLD_SIZE=" + std::to_string(o.nproc));
    env_s.push_back("MASTER_ADDR=127.0.0.1");
    env_s.push_back("MASTER_PORT=" + std::to_string(port));
    std::vector<char*> envp;
    for (auto& kv : env_s) envp.push_back(kv.data());
    envp.push_back(nullptr);
    int out[2], err[2];
    CHECK(::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0, "pipe: ", std::strerror(errno));
    pid_t pid = ::fork();
    CHECK(pid >= 0, "fork: ", std::strerror(errno));
    if (pid == 0) {
      // Own process group: the terminal's Ctrl-C reaches the launcher, which forwards it once.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a launcher that was killed
      if (::getppid() != launcher) ::_exit(127);
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execve(exe.c_str(), argv.data(), envp.data());
      const char msg[] = "attnlab launch: exec failed\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from the parent: no window where signals miss the group
    ::close(out[1]);
    ::close(err[1]);
    ranks[r].pid = pid;
    ranks[r].running = true;
    ranks[r].streams[0] = {out[0], stdout, {}};
    ranks[r].streams[1] = {err[0], stderr, {}};
  }

  using Clock = std::chrono::steady_clock;
  int first_failed = -1;
  int forwarded = 0;
  std::optional<Clock::time_point> kill_at, drain_until;
  int running = o.nproc;
  auto stop_others = [&](int sig) {
    for (const Rank& r : ranks) signal_rank(r, sig);
    if (!kill_at) kill_at = Clock::now() + std::chrono::milliseconds(int64_t(o.grace_s * 1000));
  };
  while (true) {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, int>> who;  // (rank, stream)
    for (int r = 0; r < o.nproc; ++r)
      for (int s = 0; s < 2; ++s)
        if (ranks[r].streams[s].fd >= 0) {
          fds.push_back({ranks[r].streams[s].fd, POLLIN, 0});
          who.emplace_back(r, s);
        }
    if (fds.empty() && running == 0) break;
    int ready = ::poll(fds.data(), fds.size(), 100);
    for (size_t i = 0; ready > 0 && i < fds.size(); ++i)
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) pump(who[i].first, ranks[who[i].first].streams[who[i].second]);

    for (int r = 0; r < o.nproc; ++r) {
      Rank& rk = ranks[r];
      if (!rk.running) continue;
      int st = 0;
      if (::waitpid(rk.pid, &st, WNOHANG) != rk.pid) continue;
      rk.running = false;
      rk.status = st;
      --running;
      if (exit_code_of(st) != 0 && first_failed < 0 && !forwarded) {
        first_failed = r;
        std::fprintf(stderr, "attnlab launch: rank %d %s; stopping the other ranks (SIGTERM, SIGKILL after %g s)\n",
                     r, status_text(st).c_str(), o.grace_s);
        stop_others(SIGTERM);
      }
    }
    if (g_signal && !forwarded) {
      forwarded = g_signal;
      std::fprintf(stderr, "attnlab launch: got %s; forwarding it to the ranks\n", strsignal(forwarded));
      stop_others(forwarded);
    }
    if (kill_at && Clock::now() >= *kill_at && running > 0) {
      for (const Rank& r : ranks) signal_rank(r, SIGKILL);
      kill_at = Clock::now() + std::chrono::hours(1);  // once
    }
    // Every rank exited, but something a rank started may still hold its pipes: read what is
    // left for a moment, then stop.
    if (running == 0) {
      if (!drain_until) drain_until = Clock::now() + std::chrono::seconds(2);
      else if (Clock::now() >= *drain_until) break;
    }
  }
  for (Rank& r : ranks)
    for (Stream& s : r.streams)
      if (s.fd >= 0) ::close(s.fd);
  if (first_failed >= 0) return exit_code_of(ranks[first_failed].status);
  for (const Rank& r : ranks)
    if (exit_code_of(r.status) != 0) return exit_code_of(r.status);
  return 0;
}

void setup(CLI::App& root) {
  auto opts = std::make_shared<LaunchOptions>();
  auto* c = root.add_subcommand(
      "launch",
      "Run an attnlab command as N ranks on this machine (like torchrun --nproc-per-node N).\n"
      "Each rank is a copy of this attnlab with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,\n"
      "MASTER_ADDR=127.0.0.1 and MASTER_PORT set; its output lines start with [rank r]. If a rank\n"
      "fails, the others get SIGTERM, then SIGKILL after --grace seconds, and launch exits with\n"
      "the failed rank's status. Ctrl-C (SIGINT/SIGTERM) is forwarded to every rank.\n"
      "Examples:\n"
      "  attnlab launch --nproc 4 -- train experiments/quickstart.yaml\n"
      "  attnlab launch --nproc 2 -- dist selftest --backend single   # check the rendezvous\n"
      "  mpirun -np 2 attnlab dist selftest --backend mpi               # check MPI on the CPU\n"
      "Several machines: start attnlab on each with torchrun, srun or mpirun instead; attnlab\n"
      "reads their variables (see `attnlab dist selftest --help`).");
  c->add_option("--nproc", opts->nproc, "number of ranks to start (one per GPU when training on GPUs)")
      ->required()
      ->check(CLI::Range(1, 4096));
  c->add_option("--master-port", opts->master_port,
                "TCP port of the rendezvous on 127.0.0.1 (default: a free port chosen at start)")
      ->check(CLI::Range(1, 65535));
  c->add_option("--grace", opts->grace_s, "seconds between SIGTERM and SIGKILL when stopping ranks")
      ->capture_default_str();
  c->add_option("command", opts->command, "the attnlab subcommand and its arguments, after --")->required();
  c->callback([opts] {
    int code = run_launch(*opts);
    if (code != 0) exit_with(code);
  });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
