#include "core/analysis/needle_study.h"

#include <nlohmann/json.hpp>

#include "core/config/analysis_config.h"

namespace attnlab::analysis {

namespace {

void declare(config::FieldBinder<NeedleStudyConfig>& f) {
  f.field("every_epochs", &NeedleStudyConfig::every_epochs,
          "run the analysis every N epochs of training (0: not by epochs); the last step always runs it")
      .def(0)
      .at_least(0);
  f.field("every_steps", &NeedleStudyConfig::every_steps, "run the analysis every N optimizer steps (0: not by steps)")
      .def(0)
      .at_least(0);
  f.field("depths", &NeedleStudyConfig::depths, "needle depths (fractions of the context)")
      .def(std::vector<double>{0.0, 0.25, 0.5, 0.75})
      .range_closed_open(0, 1);
  f.field("samples", &NeedleStudyConfig::samples, "contexts per depth (ORIGINAL 50)").def(200).range_closed(1, 100000);
  f.field("context_length", &NeedleStudyConfig::context_length,
          "filler words = floor(context_length / 4); ORIGINAL 511 (keep it within the model's context)")
      .def(511)
      .range_closed(8, 1 << 20);
  f.field("seed", &NeedleStudyConfig::seed, "needle generator seed").def(0).at_least(0);
  f.field("layer", &NeedleStudyConfig::layer, "layer whose attention is read; -1: the last").def(-1).at_least(-1);
  f.enum_field("rows", &NeedleStudyConfig::rows, {{"question", NeedleRows::question}, {"last", NeedleRows::last}},
               "attention rows: the question's tokens, or the last token only")
      .def("question");
  f.field("all_depths", &NeedleStudyConfig::all_depths,
          "ORIGINAL generator: one context per sample with the target at every depth")
      .def(false);
  f.field("seed_compat", &NeedleStudyConfig::seed_compat,
          "ORIGINAL analysis (raw-embedding head-0 map, min-max), for reference only")
      .def(false);
  f.field("file", &NeedleStudyConfig::file, "JSON lines file of the results, relative to the run folder")
      .def("needle.jsonl")
      .as_path();
}

}  // namespace

void register_needle_study() {
  if (config::find_study(kNeedleStudy)) return;
  config::register_study<NeedleStudyConfig>(
      kNeedleStudy, "answer-to-noise needle analysis of the from-scratch decoders during training (METHODS 3.6-3.7)",
      declare);
}

NeedleRunOptions needle_run_options(const NeedleStudyConfig& s) {
  NeedleRunOptions o;
  o.contexts.depths = s.depths;
  o.contexts.samples = s.samples;
  o.contexts.context_length = s.context_length;
  o.contexts.seed = uint64_t(s.seed);
  o.contexts.all_depths = s.all_depths;
  o.layer = s.layer;
  o.last_row_only = s.rows == NeedleRows::last;
  o.seed_compat = s.seed_compat;
  return o;
}

bool needle_due(const NeedleStudyConfig& s, int64_t step, int64_t total, int64_t steps_per_epoch) {
  if (step <= 0) return false;
  if (step == total) return true;
  if (s.every_steps > 0 && step % s.every_steps == 0) return true;
  const int64_t every = s.every_epochs * std::max<int64_t>(1, steps_per_epoch);
  return s.every_epochs > 0 && step % every == 0;
}

nlohmann::ordered_json needle_record(const NeedleReport& r, int64_t step, double epoch) {
  nlohmann::ordered_json j;
  j["step"] = step;
  j["epoch"] = epoch;
  j["attention"] = r.differential ? "differential" : "standard";
  nlohmann::ordered_json depths = nlohmann::ordered_json::array();
  for (const DepthStats& d : r.depths)
    depths.push_back({{"depth", d.depth},
                      {"n", d.n},
                      {"answer", d.mean_answer},
                      {"answer_std", d.std_answer},
                      {"noise", d.mean_noise},
                      {"noise_std", d.std_noise},
                      {"answer_per_token", d.mean_answer_per_token},
                      {"noise_per_token", d.mean_noise_per_token},
                      {"anr", d.mean_anr},
                      {"anr_std", d.std_anr},
                      {"mass_ratio", d.mean_mass_ratio}});
  j["depths"] = std::move(depths);
  return j;
}

}  // namespace attnlab::analysis
