#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace attnlab {

// The one exception type of attnlab. `what()` is a single line: "file:line: expr: message".
// main() catches it, prints it, and exits non-zero; library code never calls exit().
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
  Error(const char* file, int line, const char* expr, const std::string& msg);
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
