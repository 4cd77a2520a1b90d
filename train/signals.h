#pragma once
// SIGINT / SIGTERM during training: the first signal only raises a flag, so the trainer finishes
// the step it is in, saves a checkpoint and returns; a second SIGINT ends the process at once
// (the default action), for a user who really wants out.
#include <csignal>

namespace attnlab::train {

// Installs the handlers while alive and restores the previous ones when destroyed.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal that asked to stop (SIGINT or SIGTERM), 0 while none has.
  static int received();
  // Clears the flag (a new run in the same process starts clean).
  static void reset();
  // Raises the flag as if `sig` had arrived (tests, and a trainer asked to stop by its caller).
  static void request(int sig);

 private:
  struct sigaction old_int_{}, old_term_{};
};

}  // namespace attnlab::train
