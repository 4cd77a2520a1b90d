#pragma once
// The `analysis.study: answer_to_noise` section (core/config/analysis_config.h): the answer-to-noise
// needle analysis of METHODS §3.6–§3.7 run on the current weights while a from-scratch decoder
// trains, e.g. every 5 epochs as the ORIGINAL did. Each run appends one JSON line per depth set to
// <run folder>/<file> (default needle.jsonl): step, epoch and the per-depth numbers of
// needle_report_json.
//
//   analysis:
//     study: answer_to_noise
//     every_epochs: 5        # or every_steps: N; the end of training always runs it too
//     depths: [0, 0.25, 0.5, 0.75]
//     samples: 200
//
// register_needle_study() registers the schema (idempotent); the CLI does it at start-up, tests
// before loading a config that selects the study.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/analysis/needle_run.h"
#include "core/config/experiment.h"

namespace attnlab::analysis {

inline constexpr const char* kNeedleStudy = "answer_to_noise";

enum class NeedleRows : uint8_t { question, last };

struct NeedleStudyConfig {
  int64_t every_epochs = 0;  // 0: not by epochs
  int64_t every_steps = 0;   // 0: not by steps
  std::vector<double> depths;
  int64_t samples = 0;
  int64_t context_length = 0;
  int64_t seed = 0;
  int64_t layer = -1;
  NeedleRows rows = NeedleRows::question;
  bool all_depths = false;
  bool seed_compat = false;
  std::string file;  // relative to the run folder
};

void register_needle_study();

// The analysis options the section describes.
NeedleRunOptions needle_run_options(const NeedleStudyConfig& s);

// Whether the analysis runs after optimizer step `step` of `total` (steps_per_epoch ≥ 1): at every
// every_steps-th step, at every every_epochs-th epoch boundary, and at the last step.
bool needle_due(const NeedleStudyConfig& s, int64_t step, int64_t total, int64_t steps_per_epoch);

// One record (a JSON line) for the run folder's needle file: {"step", "epoch", "attention", "depths": [...]}
// with per depth: depth, n, answer, answer_std, noise, noise_std, answer_per_token,
// noise_per_token, anr, anr_std, mass_ratio.
nlohmann::ordered_json needle_record(const NeedleReport& r, int64_t step, double epoch);

}  // namespace attnlab::analysis
