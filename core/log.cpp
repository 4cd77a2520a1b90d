#include "core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace attnlab {

namespace {
int g_rank = 0, g_world = 1;
LogLevel initial_level() {
  const char* e = std::getenv("ATTNLAB_LOG");
  if (!e) return LogLevel::info;
  if (!std::strcmp(e, "debug")) return LogLevel::debug;
  if (!std::strcmp(e, "warn")) return LogLevel::warn;
  if (!std::strcmp(e, "error")) return LogLevel::error;
  return LogLevel::info;
}
LogLevel g_level = initial_level();
std::mutex g_mu;
}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world = world_size;
}
void set_log_level(LogLevel lvl) { g_level = lvl; }
LogLevel log_level() { return g_level; }

void log_line(LogLevel lvl, const std::string& msg) {
  if (lvl < g_level) return;
  if (lvl <= LogLevel::info && g_rank != 0) return;
  static const char* tag[] = {"debug", "info", "warn", "error"};
  std::lock_guard<std::mutex> lock(g_mu);
  FILE* out = lvl >= LogLevel::warn ? stderr : stdout;
  if (g_world > 1) std::fprintf(out, "[rank %d] ", g_rank);
  if (lvl != LogLevel::info) std::fprintf(out, "%s: ", tag[int(lvl)]);
  std::fprintf(out, "%s\n", msg.c_str());
  std::fflush(out);
}

}  // namespace attnlab
