#pragma once
// The trainer behind `attnlab train` (DESIGN.md §8): pretrain, sft and kv_only from one
// experiment config.
//
// One optimizer step:
//   1. the grad_accum micro-batches of the step are read first, so the global count of target
//      tokens (over micro-batches, then summed over ranks) is known before any forward: it is the
//      denominator of the loss (cross-entropy's valid_count), which makes k micro-batches of B
//      rows give the gradient of one batch of k·B rows;
//   2. zero the gradients, then forward + backward per micro-batch (parameter gradients add up);
//   3. all-reduce the gradients across ranks (the Communicator; world size 1 runs the same path);
//   4. global gradient norm → clip scale and NaN/Inf flag → AdamW, all on the device; a flagged
//      step changes no weight and is counted, and max_bad_steps in a row stop the run;
//   5. one small read-back (loss, norm, flag) for the guard, the progress line and the metrics.
//
// Around it: warmup + cosine/linear/constant learning rates, periodic validation with the best
// checkpoint kept, checkpoints every N steps (keep-last-N) and at the end, exact resume from the
// latest complete checkpoint, metrics.jsonl, a live progress line, SIGINT/SIGTERM handled by
// finishing the step and saving, and the profile.steps window for nsys/ncu.
//
// The run folder <run.out_dir>/<run.name> holds config.yaml (the resolved config),
// metrics.jsonl, checkpoints/ and, unless data.shard_dir says otherwise, shards/.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/config/experiment.h"
#include "core/models/model.h"
#include "core/models/trainable_model.h"
#include "train/checkpoint.h"

namespace attnlab::dist {
class Communicator;
}
namespace attnlab::data {
struct PreparedData;
}

namespace attnlab::train {

class Trainer;

struct TrainerOptions {
  // The ranks' collectives; null: a single-process communicator on the trainer's device.
  dist::Communicator* comm = nullptr;
  // Token shards prepared beforehand (tests; ranks other than 0); null: prepared from cfg.data.
  std::shared_ptr<const data::PreparedData> data;
  // Progress line and messages (rank 0); null: silent.
  std::FILE* console = stdout;
  // Stop as if SIGINT had arrived once this many optimizer steps are done (tests of resume).
  std::optional<int64_t> stop_at_step;
  // Resume even when the saved run's config differs in more than run length and reporting
  // (`attnlab train --continue-changed`); the differences are printed as a warning.
  bool continue_changed = false;
  // Called after the backward of every step, before the optimizer (tests inject faults here).
  std::function<void(Trainer&, int64_t step)> after_backward;
};

struct TrainResult {
  int64_t start_step = 0;     // where this session began (> 0 when it resumed)
  int64_t steps_done = 0;     // optimizer steps done when it returned
  int64_t total_steps = 0;
  bool interrupted = false;   // stopped by a signal (or stop_at_step) with a checkpoint saved
  int stop_signal = 0;
  double first_loss = 0;      // loss of this session's first step
  double last_loss = 0;       // mean loss over the last logging interval
  std::optional<double> first_val_loss, last_val_loss, best_val_loss;
  int64_t skipped_steps = 0;
  double wall_s = 0;          // this session's training time
  std::string run_dir;
  std::string resumed_from;   // checkpoint folder, empty for a fresh start
  std::string last_checkpoint;
};

class Trainer {
 public:
  // Sets up everything: device, run folder, data, model, optimizer, and the resume.
  explicit Trainer(const config::ExperimentConfig& cfg, TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to the end (or to a stop request). Throws attnlab::Error on failure, including the
  // NaN/Inf guard giving up.
  TrainResult run();

  // Validation loss (token-weighted mean over eval.batches batches); the model returns to
  // training mode afterwards.
  double evaluate();

  TrainableModel& model();  // a Model, or a ScratchDecoder (model.from init:decoder_*)
  Ctx& ctx();
  const TrainerState& state() const;
  const std::string& run_dir() const;
  int64_t total_steps() const;
  int64_t trainable_numel() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnlab::train
