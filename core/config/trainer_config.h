#pragma once
// The trainer's sections: `train:` (batching, length, trainable set), `eval:`, `checkpoint:`
// and `log:` (DESIGN.md §8).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config/field.h"

namespace attnlab::config {

struct TrainConfig {
  int64_t micro_batch = 0;  // sequences per micro-step, per rank
  int64_t grad_accum = 0;   // micro-steps per optimizer step
  std::optional<int64_t> steps;       // optimizer steps; exclusive with epochs
  std::optional<int64_t> epochs;      // passes over the training split
  std::optional<int64_t> max_tokens;  // stop once this many training tokens were seen
  // Globs over HF parameter names; unset: every parameter (pretrain, sft) or the k/v
  // projections (kv_only).
  std::optional<std::vector<std::string>> trainable;
  int64_t max_bad_steps = 0;  // consecutive NaN/Inf steps (skipped) before training stops with an error
};

enum class BestMetric : uint8_t { none, val_loss };

struct EvalConfig {
  int64_t every_steps = 0;  // 0: no evaluation during training
  std::optional<int64_t> every_epochs;  // instead of every_steps: every N passes over the training split
  int64_t batches = 0;      // validation batches per evaluation
  BestMetric best_metric = BestMetric::none;
};

struct CheckpointConfig {
  int64_t every_steps = 0;  // 0: only at the end (and on SIGINT/SIGTERM)
  int64_t keep_last = 0;    // 0: keep all
  std::string resume;       // auto | never | a checkpoint folder

  bool resume_auto() const { return resume == "auto"; }
  bool resume_never() const { return resume == "never"; }
};

struct LogConfig {
  int64_t every_steps = 0;
  std::string metrics_file;  // relative to the run folder
  bool progress = true;
  // Globs over parameter names: each logged train record also carries "grads_norm/<name>" = the
  // L2 norm of that parameter's gradient in the step (the two-pass study's per-gate norms).
  std::vector<std::string> grad_norms;
};

void declare_fields(FieldBinder<TrainConfig>& f);
void declare_fields(FieldBinder<EvalConfig>& f);
void declare_fields(FieldBinder<CheckpointConfig>& f);
void declare_fields(FieldBinder<LogConfig>& f);

}  // namespace attnlab::config
