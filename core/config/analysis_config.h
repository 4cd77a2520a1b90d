#pragma once
// The `analysis:` section. Its fields belong to the studies (spec/METHODS.md): each study
// registers a schema — a struct of its own and the fields that fill it — under a name, and
// `analysis.study: <name>` selects whose fields the rest of the section holds. The selected
// study's fields then behave like every other field: typed, checked, defaulted, overridable
// (analysis.<field>=value), listed by `attnlab config fields` and printed in the resolved config.
//
//   struct AnswerToNoiseConfig { int64_t layer = 0; std::vector<double> depths; };
//   void declare(FieldBinder<AnswerToNoiseConfig>& f) {
//     f.field("layer", &AnswerToNoiseConfig::layer, "layer whose attention is read").def(-1);
//     f.field("depths", &AnswerToNoiseConfig::depths, "needle depths").def(std::vector<double>{0, 0.5});
//   }
//   register_study<AnswerToNoiseConfig>("answer_to_noise", "needle answer-to-noise ratio", declare);
//   ...
//   const auto& a = cfg.analysis.as<AnswerToNoiseConfig>();
//
// Register before loading; registration is not thread-safe and a name registers once. The studies
// attnlab ships (studies/, docs/dev/studies.md) register here through studies::install_study, which
// the CLI runs for every builtin study at start-up. `none` is the one value that means no study.
#include <any>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config/field.h"

namespace attnlab::config {

inline constexpr const char* kNoStudy = "none";

struct StudySchema {
  std::string name;
  std::string doc;
  std::deque<FieldSpec> fields;             // paths "analysis.<field>"
  std::function<std::any()> make_default;   // a value-initialised study struct
};

// Every registered study, in registration order.
const std::vector<std::unique_ptr<StudySchema>>& registered_studies();
const StudySchema* find_study(const std::string& name);
void add_study(std::unique_ptr<StudySchema> schema);  // checks the declarations

template <class S>
void register_study(const std::string& name, const std::string& doc, void (*declare)(FieldBinder<S>&)) {
  auto schema = std::make_unique<StudySchema>();
  schema->name = name;
  schema->doc = doc;
  schema->make_default = [] { return std::any(S{}); };
  FieldBinder<S> binder(schema->fields, "analysis", [](void* target) { return std::any_cast<S>(static_cast<std::any*>(target)); },
                        /*in_study=*/true);
  declare(binder);
  add_study(std::move(schema));
}

struct AnalysisConfig {
  std::string study = kNoStudy;
  std::any fields;  // the study's struct, filled by the loader; empty with no study

  bool active() const { return study != kNoStudy; }
  template <class S>
  const S& as() const {
    const S* s = std::any_cast<S>(&fields);
    CHECK(s != nullptr, "analysis: the config holds study '", study, "', not the struct asked for");
    return *s;
  }
};

}  // namespace attnlab::config
