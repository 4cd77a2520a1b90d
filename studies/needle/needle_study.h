#pragma once
// The answer-to-noise needle study (METHODS §3.6–§3.7) on the study interface (studies/study.h):
//   - training: `analysis.study: answer_to_noise` runs the analysis on the current weights while a
//     from-scratch decoder trains, e.g. every 5 epochs as the ORIGINAL did. Each run appends one JSON
//     line per depth set to <run folder>/<file> (default needle.jsonl): step, epoch and the
//     per-depth numbers of needle_report_json (needle_training.cpp);
//   - standalone: `attnlab analyze needle --ckpt A --ckpt B` on saved checkpoints
//     (needle_command.cpp), with the same fields as options (--depths, --samples, ...).
//
//   analysis:
//     study: answer_to_noise
//     every_epochs: 5        # or every_steps: N; the end of training always runs it too
//     depths: [0, 0.25, 0.5, 0.75]
//     samples: 200
//
// register_needle_study() installs it (idempotent); the CLI installs every builtin study at
// start-up (studies/registry.h), tests before loading a config that selects it.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/experiment.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "studies/needle/needle_run.h"
#include "studies/study.h"

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

// The standalone command's own options (`attnlab analyze needle`); the analysis fields above are
// its other options.
struct NeedleCommandOptions {
  std::vector<std::string> ckpts;
  std::string tokenizer;
  std::string out;
  Device device = Device::cpu;
  DType dtype = DType::f32;
};

void register_needle_study();

// The parts of the study (needle_training.cpp, needle_command.cpp).
std::unique_ptr<train::StudyHooks> start_needle_training(const train::StudyRun& run);
void run_needle_command(const NeedleStudyConfig& s, const NeedleCommandOptions& o);

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

namespace attnlab::studies {
std::shared_ptr<const Study> needle_study();
}  // namespace attnlab::studies
