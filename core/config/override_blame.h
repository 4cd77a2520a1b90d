#pragma once
// Where a config problem about several fields points, when the command line took part in it. A
// problem caused by a `key=value` override names that override ("command line: train.steps=5"),
// not the file's line, and for each other field of the conflict that a file set it says where and
// how to unset it from the command line: `path=null` for a field that may stay unset, else
// `path=<default>`. Used by every problem that names fields after the overrides were applied: the
// cross-field rules (loader.cpp) and the buildability checks (buildable.cpp).
#include <string>
#include <vector>

#include "core/config/registry.h"
#include "core/config/resolved.h"

namespace attnlab::config {

struct ProblemPlace {
  std::string where;  // "" when no field of the problem was given (the caller's own fallback)
  std::string note;   // appended to the message; "" unless an override took part
};

// `blame`: the fields the problem is about, the one to point at first; `reads`: other fields it
// depends on. Points at the first blamed field an override set, else the first read one an
// override set, else the first blamed field given anywhere (a file's FILE:LINE:COLUMN). The note
// lists the blamed fields a file set when an override is pointed at.
ProblemPlace place_problem(const ResolvedConfig& resolved, const Schema& schema, const std::vector<std::string>& blame,
                           const std::vector<std::string>& reads = {});

// The core field paths `message` mentions (whole dotted paths), in the order of the schema.
std::vector<std::string> fields_named_in(const std::string& message, const Schema& schema);

}  // namespace attnlab::config
