#pragma once
// INPUT_CHECK lives in core/error.h (every layer validates user input); this header stays for the
// data code that includes it.
#include "core/error.h"
