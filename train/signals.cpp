#include "train/signals.h"

#include <atomic>
#include <cstring>

namespace attnlab::train {

namespace {

// Only a lock-free atomic may be touched from a signal handler.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.load() != 0 && sig == SIGINT) {
    // Second Ctrl-C: give up on the clean stop.
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  g_stop_signal.store(sig);
}

}  // namespace

StopSignals::StopSignals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: a read or write interrupted by the signal resumes instead of failing with EINTR.
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

int StopSignals::received() { return g_stop_signal.load(); }
void StopSignals::reset() { g_stop_signal.store(0); }
void StopSignals::request(int sig) { g_stop_signal.store(sig); }

}  // namespace attnlab::train
