#pragma once
// Helpers for the experiment-config tests: YAML written to temporary files, problems
// collected from a failed load, and positions found by searching the YAML text.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/config/experiment.h"

namespace attnlab::test {

// A YAML file under /tmp that is removed when the object goes out of scope.
class TempYaml {
 public:
  explicit TempYaml(const std::string& text) : text_(text) {
    char name[] = "/tmp/attnlab_cfg_XXXXXX.yaml";
    int fd = mkstemps(name, 5);
    EXPECT_GE(fd, 0) << "cannot create a temporary file";
    close(fd);
    path_ = name;
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~TempYaml() { std::remove(path_.c_str()); }
  TempYaml(const TempYaml&) = delete;
  TempYaml& operator=(const TempYaml&) = delete;

  const std::string& path() const { return path_; }
  const std::string& text() const { return text_; }

  // "PATH:LINE:COLUMN" (1-based) of the `occurrence`-th appearance of `needle` in the text,
  // found by scanning the text (independently of yaml-cpp's marks).
  std::string at(const std::string& needle, int occurrence = 1) const {
    size_t pos = std::string::npos;
    for (int i = 0; i < occurrence; ++i) pos = text_.find(needle, pos == std::string::npos ? 0 : pos + 1);
    EXPECT_NE(pos, std::string::npos) << "'" << needle << "' is not in the test YAML";
    if (pos == std::string::npos) return "?";
    int line = 1, col = 1;
    for (size_t i = 0; i < pos; ++i) {
      if (text_[i] == '\n') { ++line; col = 1; }
      else ++col;
    }
    return path_ + ":" + std::to_string(line) + ":" + std::to_string(col);
  }

 private:
  std::string text_, path_;
};

// The problems of a load that must fail; records a test failure when it loads.
inline std::vector<config::Problem> problems_of(const std::string& path, const std::vector<std::string>& overrides = {}) {
  try {
    config::load_experiment(path, overrides);
  } catch (const config::ConfigError& e) {
    return e.problems();
  }
  ADD_FAILURE() << path << " loaded without problems";
  return {};
}

// True when some problem is exactly at `where` and its message contains `fragment`.
inline bool has_problem(const std::vector<config::Problem>& problems, const std::string& where,
                        const std::string& fragment) {
  for (const auto& p : problems)
    if (p.where == where && p.message.find(fragment) != std::string::npos) return true;
  return false;
}

inline std::string dump(const std::vector<config::Problem>& problems) {
  std::string s;
  for (const auto& p : problems) s += "  " + p.text() + "\n";
  return s;
}

// A minimal valid pretrain config; tests append or replace lines to break it.
inline std::string minimal_pretrain_yaml() {
  return "task: pretrain\n"
         "run:\n"
         "  name: tiny\n"
         "model:\n"
         "  from: init:gpt2\n"
         "data:\n"
         "  path: corpus.txt\n"
         "train:\n"
         "  steps: 100\n";
}

}  // namespace attnlab::test
