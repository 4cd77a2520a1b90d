#pragma once
// The exit status of every attnlab command: one table, printed by `attnlab --help` and the README.
// A requeue wrapper tells a finished run (0) from one stopped by a signal after saving (3); a
// config or argument mistake (2) is not worth a retry, a runtime failure (1) may be.
namespace attnlab::cli {

inline constexpr int kExitOk = 0;            // done (or --help / --version)
inline constexpr int kExitFailure = 1;       // a runtime failure: data, I/O, device, NaN guard, failed check
inline constexpr int kExitBadInput = 2;      // a bad config file, override or command-line argument
inline constexpr int kExitStopped = 3;       // training stopped by SIGINT/SIGTERM after saving a checkpoint

inline constexpr const char* kExitCodeTable =
    "Exit status (every command):\n"
    "  0  done\n"
    "  1  runtime failure (missing data, I/O, device, the NaN/Inf guard, a failed check)\n"
    "  2  bad config file, override or command-line argument (nothing was run)\n"
    "  3  training stopped by SIGINT/SIGTERM after saving a checkpoint (run the same command to resume)";

}  // namespace attnlab::cli
