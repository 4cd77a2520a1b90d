#pragma once
// Internal to the loader (loader.cpp, overrides.cpp): what one load has gathered so far.
#include <map>
#include <string>
#include <vector>

#include "core/config/diagnostics.h"
#include "core/config/registry.h"
#include "core/config/resolved.h"

namespace attnlab::config {

struct FieldState {
  Value value;
  Source source = Source::default_value;  // default_value: not given (yet)
  std::string where;                      // the key's FILE:LINE:COLUMN, or "command line: k=v"
  bool bad = false;                       // a problem was reported for this field
};

struct LoadState {
  LoadState(std::string file_name, const Schema& s) : file(std::move(file_name)), schema(s) {}

  std::string file;
  const Schema& schema;
  std::map<std::string, FieldState> fields;          // given fields, by path
  std::map<std::string, std::string> section_where;  // "optim" -> where its key is in the file
  std::vector<Problem> problems;
  bool skip_study_fields = false;  // analysis.study names no registered study: its fields are unknowable
  bool file_study_set_aside = false;  // an override chose another study: skip the file's study fields
  bool file_unusable = false;      // syntax error or not a mapping: skip missing-key and rule checks

  void fail(std::string where, std::string message) { problems.push_back({std::move(where), std::move(message)}); }
  // Where to point for a problem about `path`: where it was given, else its nearest section
  // in the file, else the top of the file.
  std::string where_for(const std::string& path) const;
  bool is_study_path(const std::string& path) const;
};

// "unknown key 'lrr' in optim; did you mean 'optim.lr'?" for key `key` under `prefix`.
std::string unknown_key_message(const Schema& schema, const std::string& prefix, const std::string& key);

// Applies `key.path=value` overrides on top of what the file gave (overrides.cpp).
void apply_overrides(const std::vector<std::string>& overrides, LoadState& st);
// The value of `analysis.study=...` among the overrides, if any (the last one wins).
const std::string* study_override(const std::vector<std::string>& overrides, std::string& storage);

}  // namespace attnlab::config
