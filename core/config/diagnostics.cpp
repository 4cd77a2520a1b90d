#include "core/config/diagnostics.h"

namespace attnlab::config {

namespace {
std::string join_problems(const std::vector<Problem>& problems) {
  std::string s;
  for (size_t i = 0; i < problems.size(); ++i) s += (i ? "\n" : "") + problems[i].text();
  return s;
}
}  // namespace

ConfigError::ConfigError(std::vector<Problem> problems)
    : Error(join_problems(problems)), problems_(std::move(problems)) {}

std::string file_location(const std::string& file, int line0, int column0) {
  if (line0 < 0 || column0 < 0) return file;  // yaml-cpp's null mark: no position known
  return file + ":" + std::to_string(line0 + 1) + ":" + std::to_string(column0 + 1);
}

}  // namespace attnlab::config
