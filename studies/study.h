#pragma once
// A study (DESIGN.md §2; docs/dev/studies.md says how to add one): the analyses of one research
// question, written once and reached from three places:
//   - training: `analysis.study: <name>` in an experiment file selects it, the rest of the
//     `analysis:` section holds its fields, and the trainer calls its hooks after every optimizer
//     step and evaluation (train/study_hooks.h) without knowing which study it is;
//   - generation: hooks around a generation call (GenerationHooks below; interface only: no
//     command calls them yet);
//   - standalone: `attnlab analyze <command>` runs it on saved models.
//
// Its fields are declared once, with the config machinery (core/config/field.h). That one table is
// the `analysis:` section (loader, overrides, `attnlab validate`, `attnlab config fields`, the
// printed resolved config) and the standalone command's options (studies/study_command.h): every
// field is also --<name> (e.g. --context-length), unless it is .training_only() or names another
// flag with .cli("--flag"). The command's own inputs and outputs (checkpoints, output folder,
// device) are a second table of the same kind.
//
// A study is listed once in studies/registry.cpp (builtin_studies()); install_study() makes its
// fields known to the config loader and its hooks to the trainer.
#include <any>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config/field.h"
#include "train/study_hooks.h"

namespace attnlab {
class Model;
struct GenerationConfig;
struct GenerationResult;
}  // namespace attnlab

namespace attnlab::studies {

// A table of fields and a default-constructed struct they fill (held in a std::any; each field's
// store() writes into the std::any's struct).
struct FieldTable {
  std::deque<config::FieldSpec> fields;
  std::function<std::any()> make_default;
};

// The table of struct S's fields under `prefix` ("analysis" for a study's section, "" for a
// command's own options), from a declare function like every config section's.
template <class S>
FieldTable field_table(const std::string& prefix, void (*declare)(config::FieldBinder<S>&)) {
  FieldTable t;
  t.make_default = [] { return std::any(S{}); };
  config::FieldBinder<S> binder(t.fields, prefix, [](void* target) { return std::any_cast<S>(static_cast<std::any*>(target)); },
                                /*in_study=*/true);
  declare(binder);
  for (const config::FieldSpec& f : t.fields) config::check_declaration(f);
  return t;
}

// One generation call as a study's hooks see it. Interface only for now: the generate command
// will call before_call (a hook may change the sampling settings), on_token after every new
// token, and after_call with the result, once the attention controllers are layer modules
// (issue 13 item 4); probes (ProbeSink) are how a hook will read attention during the call.
struct GenerationCall {
  Model& model;
  Ctx& ctx;
  const std::vector<std::vector<int32_t>>& prompts;
  GenerationConfig& config;
  const GenerationResult* result = nullptr;  // set for after_call
};

class GenerationHooks {
 public:
  virtual ~GenerationHooks() = default;
  virtual void before_call(GenerationCall& call) {}
  virtual void on_token(int64_t row, int32_t token) {}
  virtual void after_call(const GenerationCall& call) {}
};

// The standalone command of a study: `attnlab analyze <name>`.
struct StudyCommand {
  std::string name;         // e.g. "needle"; empty: the study has no standalone command
  std::string description;  // one line, for `attnlab analyze --help`
  std::string footer;       // more text and an example, for `attnlab analyze <name> --help`
};

class Study {
 public:
  virtual ~Study() = default;

  // The value of analysis.study that selects it (letters, digits and _), and one line about it.
  virtual std::string name() const = 0;
  virtual std::string doc() const = 0;

  // The analysis fields: prefix "analysis", filling the study's own struct, which the trainer's
  // config holds in cfg.analysis.fields (cfg.analysis.as<S>()) and the standalone run gets.
  virtual FieldTable analysis_fields() const = 0;

  // Training: the hooks for one run (null: nothing to do); throws to refuse the run.
  virtual std::unique_ptr<train::StudyHooks> start_training(const train::StudyRun& run) const { return nullptr; }

  // Generation: the hooks for one generate session with the study's fields (null: none).
  virtual std::unique_ptr<GenerationHooks> start_generation(const std::any& fields) const { return nullptr; }

  // Standalone: the command, its own options (prefix ""), and the run with both structs filled
  // from the command line.
  virtual StudyCommand command() const { return {}; }
  virtual FieldTable command_fields() const { return {{}, [] { return std::any(); }}; }
  virtual void run_standalone(const std::any& fields, const std::any& options) const {}
};

// Makes the study's fields known to the config loader (config::add_study) and its hooks to the
// trainer (train::add_study_hooks). Installing a study whose name is installed already does
// nothing.
void install_study(std::shared_ptr<const Study> study);

}  // namespace attnlab::studies
