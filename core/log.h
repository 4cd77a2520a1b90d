#pragma once
#include <string>

#include "core/error.h"

namespace attnlab {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// Rank-aware logging: info/debug print on rank 0 only; warn/error on every rank, prefixed
// with the rank when the world has more than one. Level from ATTNLAB_LOG (debug|info|warn|error).
void set_log_rank(int rank, int world_size);
void set_log_level(LogLevel lvl);
LogLevel log_level();
void log_line(LogLevel lvl, const std::string& msg);

template <class... A> void log_debug(const A&... a) { if (log_level() <= LogLevel::debug) log_line(LogLevel::debug, detail::cat(a...)); }
template <class... A> void log_info(const A&... a) { if (log_level() <= LogLevel::info) log_line(LogLevel::info, detail::cat(a...)); }
template <class... A> void log_warn(const A&... a) { log_line(LogLevel::warn, detail::cat(a...)); }
template <class... A> void log_error(const A&... a) { log_line(LogLevel::error, detail::cat(a...)); }

}  // namespace attnlab
