#pragma once
// Validation of user inputs (files, assets, command lines). Unlike CHECK, whose message carries
// the source location and expression for programming errors, the message here is only what the
// user needs: the file, the place in it, and the fix.
#include "core/error.h"

#define INPUT_CHECK(cond, ...)         \
  do {                                 \
    if (!(cond)) FAIL_WITH(__VA_ARGS__); \
  } while (0)
