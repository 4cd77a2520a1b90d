#pragma once
// What the trainer knows of studies: a study selected by `analysis.study` gets hooks into the
// training run, which the trainer calls through this interface without knowing which study it is.
// The studies layer (studies/, above train) installs the maker of each study's hooks by name
// (studies::install_study); the trainer asks for the hooks of cfg.analysis.study at setup.
//
//   struct MyHooks : train::StudyHooks {
//     bool on_step(const train::StudyStep& s) override { ...; return did_work; }
//   };
//   train::add_study_hooks("my_study", [](const train::StudyRun& run) { return std::make_unique<MyHooks>(run); });
//
// docs/dev/studies.md describes the whole study interface.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/config/experiment.h"
#include "core/ctx.h"
#include "core/models/trainable_model.h"

namespace attnlab::train {

// The training run as a study sees it when its hooks are made (every rank); the references stay
// valid while the hooks live.
struct StudyRun {
  const config::ExperimentConfig& cfg;  // cfg.analysis.fields holds the study's own struct
  TrainableModel& model;
  Ctx& ctx;
  std::string run_dir;
  int rank = 0, world = 1;
  int64_t resumed_step = -1;  // the step a resumed run continues after; -1 for a fresh run
  // Rank 0's console line (silent on other ranks and without a console).
  std::function<void(const std::string&)> say;
  // Puts the model back into training mode with the trainer's plan: a hook that switches the
  // model to eval mode or plans it for other shapes calls it before returning.
  std::function<void()> restore_model;
};

// After an optimizer step.
struct StudyStep {
  int64_t step = 0;             // optimizer steps done (1 after the first)
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 1;  // optimizer steps per pass over the training split (≥ 1)
  double epoch() const { return double(step) / double(steps_per_epoch); }
};

// After an evaluation on the validation split.
struct StudyEval {
  int64_t step = 0;
  double val_loss = 0;
  bool best = false;  // the best validation loss so far (eval.best_metric val_loss)
};

class StudyHooks {
 public:
  virtual ~StudyHooks() = default;
  // Called on every rank after every optimizer step, after the step's evaluation (if any).
  // Returns true when the study acted at this step, with the same answer on every rank even when
  // only rank 0 did the work: the trainer then holds the ranks at a barrier, so that the others
  // wait there rather than inside the next collective.
  virtual bool on_step(const StudyStep& step) { return false; }
  // Called on every rank after each evaluation.
  virtual void on_eval(const StudyEval& eval) {}
};

// Makes a study's hooks for one run; may return null (nothing to do in this run) and throws
// attnlab::Error to refuse the run (e.g. a model the study cannot read).
using StudyHooksMaker = std::function<std::unique_ptr<StudyHooks>(const StudyRun& run)>;

// Installs the maker of `study`'s hooks; installing a name again replaces its maker.
void add_study_hooks(const std::string& study, StudyHooksMaker make);
bool has_study_hooks(const std::string& study);

// The hooks of run.cfg.analysis.study: null when the analysis is off (analysis.study none) or the
// study has nothing to do in this run. Throws when the study has no hooks installed.
std::unique_ptr<StudyHooks> make_study_hooks(const StudyRun& run);

}  // namespace attnlab::train
