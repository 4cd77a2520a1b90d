#pragma once
// Config problems: each one names where it is (FILE:LINE:COLUMN, 1-based, or the command-line
// override it came from) and what is wrong. The loader collects every problem of a file in
// one pass and throws them together as one ConfigError.
#include <string>
#include <vector>

#include "core/error.h"

namespace attnlab::config {

struct Problem {
  std::string where;    // "exp.yaml:12:7" or "command line: optim.lr=abc"
  std::string message;  // "expected float, got 'fast'"
  std::string text() const { return where + ": " + message; }
};

// what() is every problem's text, one per line, in the order found.
class ConfigError : public Error {
 public:
  explicit ConfigError(std::vector<Problem> problems);
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::vector<Problem> problems_;
};

// "FILE:LINE:COLUMN" from yaml-cpp's 0-based line and column.
std::string file_location(const std::string& file, int line0, int column0);

}  // namespace attnlab::config
