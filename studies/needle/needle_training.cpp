// The needle study during training: after the optimizer steps it is due at, rank 0 runs the
// analysis on the current weights in eval mode, appends a record to <run folder>/<file> and prints
// one line; the training state (weights, RNG, data cursor) is left as it was.
#include <cstdio>
#include <filesystem>

#include "core/models/scratch_decoder.h"
#include "train/metrics.h"
#include "data/tokenizer.h"
#include "studies/needle/needle_study.h"

namespace attnlab::analysis {

namespace {

class NeedleTrainingHooks : public train::StudyHooks {
 public:
  explicit NeedleTrainingHooks(const train::StudyRun& run)
      : run_(run), s_(run.cfg.analysis.as<NeedleStudyConfig>()), model_(dynamic_cast<ScratchDecoder*>(&run.model)) {
    if (!model_)
      FAIL_WITH("analysis.study ", kNeedleStudy, " reads the attention of the from-scratch decoders; model.from is ",
                run.cfg.model.from, ". Fix: use model.from init:decoder_paper or init:decoder_seed, or analysis.study: none");
    if (run.rank != 0) return;
    if (s_.layer >= model_->num_layers())
      FAIL_WITH("analysis.layer ", s_.layer, " but the model has ", model_->num_layers(),
                " layers. Fix: a layer below that, or -1 for the last");
    tokenizer_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load(run.cfg.data.tokenizer));
    log_.open((std::filesystem::path(run.run_dir) / s_.file).string(), run.resumed_step);
  }

  bool on_step(const train::StudyStep& step) override {
    if (!needle_due(s_, step.step, step.total_steps, step.steps_per_epoch)) return false;
    if (run_.rank != 0) return true;
    model_->set_training(false);
    const NeedleReport r = run_needle_analysis(*model_, run_.ctx, *tokenizer_, needle_run_options(s_));
    run_.restore_model();  // the analysis planned the model for one context at a time
    log_.write(needle_record(r, step.step, step.epoch()));
    std::string line = "needle step " + std::to_string(step.step) + ":";
    for (const DepthStats& d : r.depths) {
      char buf[96];
      std::snprintf(buf, sizeof buf, " depth %g answer %.3g noise %.3g ANR %.3g;", d.depth, d.mean_answer, d.mean_noise,
                    d.mean_anr);
      line += buf;
    }
    run_.say(line);
    return true;
  }

 private:
  train::StudyRun run_;
  NeedleStudyConfig s_;
  ScratchDecoder* model_;
  std::unique_ptr<data::Tokenizer> tokenizer_;  // rank 0
  train::MetricsLog log_;                       // rank 0
};

}  // namespace

std::unique_ptr<train::StudyHooks> start_needle_training(const train::StudyRun& run) {
  return std::make_unique<NeedleTrainingHooks>(run);
}

}  // namespace attnlab::analysis
