#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace attnlab {

// The one exception type of attnlab. `what()` is a single line: "file:line: check failed: expr:
// message" for a CHECK, the message alone otherwise. `message()` is always the message alone: what
// main() prints for the user (a source location or a C++ expression means nothing to them; it is
// printed too with ATTNLAB_LOG=debug). main() catches it and exits non-zero; library code never
// calls exit().
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg), message_(msg) {}
  Error(const char* file, int line, const char* expr, const std::string& msg);
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

// A bad command-line argument or option value (exit status 2, like a bad config): thrown by the
// CLI's shared option parsers.
class UsageError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void cat_into(std::ostringstream&) {}
template <class A, class... R>
void cat_into(std::ostringstream& os, const A& a, const R&... r) {
  os << a;
  cat_into(os, r...);
}
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  cat_into(os, a...);
  return os.str();
}
}  // namespace detail

}  // namespace attnlab

// CHECK(cond, parts...): throws attnlab::Error with file:line, the expression and the
// message built by streaming the parts.
#define CHECK(cond, ...)                                                                      \
  do {                                                                                        \
    if (!(cond))                                                                              \
      throw ::attnlab::Error(__FILE__, __LINE__, #cond, ::attnlab::detail::cat(__VA_ARGS__)); \
  } while (0)

// FAIL_WITH(parts...): unconditional error (input validation, unsupported combinations).
#define FAIL_WITH(...) throw ::attnlab::Error(::attnlab::detail::cat(__VA_ARGS__))

// INPUT_CHECK(cond, parts...): validation of user input (files, assets, command lines, configs). The
// message is all the user sees: the file, the place in it and the fix — no location, no expression.
#define INPUT_CHECK(cond, ...)             \
  do {                                     \
    if (!(cond)) FAIL_WITH(__VA_ARGS__);   \
  } while (0)
