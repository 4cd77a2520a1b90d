// The analyses a config's `analysis:` section asks for during training (core/analysis/needle_study.h):
// set up with the trainer, run after the optimizer steps they are due at, on rank 0, on the current
// weights in eval mode; the training state (weights, RNG, data cursor) is left as it was.
#include <filesystem>

#include "core/analysis/needle_study.h"
#include "core/models/scratch_decoder.h"
#include "core/train/trainer_impl.h"
#include "data/tokenizer.h"

namespace attnlab::train {

void Trainer::Impl::setup_analysis() {
  if (!cfg.analysis.active()) return;
  CHECK(cfg.analysis.study == analysis::kNeedleStudy, "analysis.study ", cfg.analysis.study,
        ": the trainer runs only the ", analysis::kNeedleStudy, " study during training");
  CHECK(dynamic_cast<ScratchDecoder*>(model.get()) != nullptr, "analysis.study ", analysis::kNeedleStudy,
        " reads the attention of the from-scratch decoders; model.from is ", cfg.model.from,
        ". Fix: use model.from init:decoder_paper or init:decoder_seed, or analysis.study: none");
  if (rank != 0) return;
  const auto& s = cfg.analysis.as<analysis::NeedleStudyConfig>();
  CHECK(s.layer < model->num_layers(), "analysis.layer ", s.layer, " but the model has ", model->num_layers(),
        " layers (-1 reads the last)");
  needle_tokenizer = std::make_unique<data::Tokenizer>(data::Tokenizer::load(cfg.data.tokenizer));
  needle_log.open((std::filesystem::path(run_dir) / s.file).string(), resumed_from.empty() ? -1 : state.step);
}

void Trainer::Impl::run_analysis_if_due() {
  if (!cfg.analysis.active()) return;
  const auto& s = cfg.analysis.as<analysis::NeedleStudyConfig>();
  if (!analysis::needle_due(s, state.step, schedule.total_steps, steps_per_epoch)) return;
  if (rank == 0) {
    auto& m = dynamic_cast<ScratchDecoder&>(*model);
    m.set_training(false);
    analysis::NeedleReport r = analysis::run_needle_analysis(m, ctx, *needle_tokenizer, analysis::needle_run_options(s));
    m.set_training(true);
    m.plan(ctx, B, T);  // the analysis planned the model for one context at a time
    const double epoch = double(state.step) / double(steps_per_epoch);
    needle_log.write(analysis::needle_record(r, state.step, epoch));
    std::string line = "needle step " + std::to_string(state.step) + ":";
    for (const analysis::DepthStats& d : r.depths) {
      char buf[96];
      std::snprintf(buf, sizeof buf, " depth %g answer %.3g noise %.3g ANR %.3g;", d.depth, d.mean_answer, d.mean_noise,
                    d.mean_anr);
      line += buf;
    }
    say(line);
  }
  comm->barrier();
}

}  // namespace attnlab::train
