#pragma once
// Cross-field rules: constraints between fields that no single field can check (train.steps
// and train.epochs both set, a ramp weight without ramp normalisation, ...). Each rule names
// the fields it reads, so it is skipped when one of them already has a problem, and returns
// a message plus the fields to blame (the first one given in the file or on the command line
// is where the message points).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/config/resolved.h"

namespace attnlab::config {

struct ExperimentConfig;

struct RuleContext {
  const ExperimentConfig& cfg;
  const ResolvedConfig& resolved;
  // True when the value differs from the field's declared default. Rules use this rather than
  // "was written in the file" so that a printed resolved config, which spells out every field,
  // reloads without tripping them.
  bool non_default(const std::string& path) const;
};

struct Violation {
  std::vector<std::string> blame;
  std::string message;
};

struct CrossFieldRule {
  std::string summary;             // one line for `attnlab config fields`
  std::vector<std::string> reads;  // the field paths it reads
  std::function<std::optional<Violation>(const RuleContext&)> check;
};

const std::vector<CrossFieldRule>& cross_field_rules();

}  // namespace attnlab::config
