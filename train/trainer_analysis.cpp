// The study a config's `analysis:` section selects, during training: its hooks are made with the
// trainer (train/study_hooks.h) and called after every optimizer step and evaluation. The
// trainer knows no study by name; the studies layer installs them (studies/registry.h).
#include "train/trainer_impl.h"

namespace attnlab::train {

void Trainer::Impl::setup_analysis() {
  StudyRun run{cfg, *model, ctx, run_dir, rank, world, resumed_from.empty() ? int64_t(-1) : state.step,
               [this](const std::string& text) { say(text); },
               [this] {
                 model->set_training(true);
                 model->plan(ctx, B, T);
               }};
  study = make_study_hooks(run);
}

void Trainer::Impl::run_analysis_if_due() {
  if (!study) return;
  if (study->on_step(StudyStep{state.step, schedule.total_steps, steps_per_epoch})) comm->barrier();
}

void Trainer::Impl::analysis_after_eval(double val_loss, bool best) {
  if (study) study->on_eval(StudyEval{state.step, val_loss, best});
}

}  // namespace attnlab::train
