#include "core/error.h"

#include <cstring>

namespace attnlab {

static const char* short_path(const char* file) {
  // Keep the path from the source tree's top-level folder on, not the build machine's prefix.
  const char* best = nullptr;
  for (const char* top : {"/core/", "/cuda/", "/optim/", "/data/", "/tools/", "/tests/"}) {
    const char* p = std::strstr(file, top);
    if (p && (!best || p < best)) best = p;
  }
  return best ? best + 1 : file;
}

Error::Error(const char* file, int line, const char* expr, const std::string& msg)
    : std::runtime_error(detail::cat(short_path(file), ":", line, ": check failed: ", expr,
                                     msg.empty() ? "" : ": ", msg)),
      message_(msg.empty() ? detail::cat("internal check failed: ", expr) : msg) {}

}  // namespace attnlab
