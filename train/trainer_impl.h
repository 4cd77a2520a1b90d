#pragma once
// The trainer's insides, shared by trainer_setup.cpp (construction, resume, checkpoints) and
// trainer.cpp (the step loop, evaluation, logging). Not part of the public interface.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "core/memory.h"
#include "dist/launch_env.h"
#include "train/grad_sync.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/study_hooks.h"
#include "train/trainer.h"
#include "data/dataset.h"
#include "train/data_config.h"
#include "data/tokenizer.h"

namespace attnlab::train {

using Clock = std::chrono::steady_clock;

struct Trainer::Impl {
  Trainer* self = nullptr;
  config::ExperimentConfig cfg;
  TrainerOptions opt;
  Ctx ctx;
  DType dtype = DType::f32;
  std::unique_ptr<dist::Communicator> own_comm;
  dist::Communicator* comm = nullptr;
  int rank = 0, world = 1;
  std::string run_dir;

  std::shared_ptr<const data::PreparedData> data;
  std::unique_ptr<data::BatchLoader> train_loader, val_loader;
  int32_t pad_id = 0;

  ModelConfig model_config;  // HF models only (a scratch decoder's config is its own)
  std::unique_ptr<TrainableModel> model;
  std::unique_ptr<GradSync> grad_sync;  // before the optimizer: it pads the gradient arena
  std::unique_ptr<TrainOptimizer> optimizer;
  LrSchedule schedule;
  TrainerState state;
  std::string resumed_from;

  int64_t B = 0, T = 0, accum = 0;
  std::vector<data::Batch> batches;             // this step's micro-batches
  std::vector<int32_t> host_ids, host_targets;  // [accum·B, T]
  Buffer ids, targets;                          // the same on the device
  Buffer step_loss;                             // [1] acc dtype: Σ micro-batch losses of the step
  Buffer reduce_buf;                            // f64 scratch for host-value all-reduces

  MetricsLog metrics;
  int64_t steps_per_epoch = 1;  // optimizer steps per pass over the training split (rank's share)
  // The hooks of the study analysis.study selects (train/study_hooks.h); null with none.
  std::unique_ptr<StudyHooks> study;
  std::unique_ptr<Progress> progress;
  double model_flops_per_token = 0;
  DevicePeak peak;

  // --- trainer_setup.cpp
  void setup();
  void choose_device(int local_rank);
  void setup_comm(const dist::LaunchEnv& env);
  void setup_data();
  void setup_model(const std::string& resume_dir);
  std::string find_resume_checkpoint() const;
  // Refuses (before any work) a resume whose saved config differs in more than run length and
  // reporting, unless opt.continue_changed (resume_check.h).
  void check_resume_config(const std::string& dir);
  // "this is an auto-resume of ..." / "this resumes checkpoint.resume ...", for messages.
  std::string resume_origin(const std::string& dir) const;
  void restore(const std::string& dir);
  // Writes a checkpoint (rank 0; every rank calls it) and returns its folder.
  std::string save_checkpoint(const std::string& name, bool with_optimizer);
  void say(const std::string& text) const;  // rank 0's console

  // --- trainer_analysis.cpp
  void setup_analysis();
  // After an optimizer step: the study's step hook (and a barrier when it acted).
  void run_analysis_if_due();
  // After an evaluation: the study's eval hook.
  void analysis_after_eval(double val_loss, bool best);

  // --- trainer.cpp
  struct StepStats {
    double loss = 0, grad_norm = 0;
    bool applied = false;
    int64_t tokens = 0, targets = 0;
  };
  StepStats train_step(bool& stop_requested);
  double evaluate();
  // log.grad_norms: adds "grads_norm/<name>" (L2 of the step's gradient) for every matched parameter.
  void log_grad_norms(nlohmann::ordered_json& record) const;
  // Sums host values over the ranks (world size 1: the same values).
  void all_reduce(std::vector<double>& values);
  // Copies `rows` of a loader batch into the host step buffers at row offset `row0`, padding
  // missing columns and rows with pad inputs and ignored targets.
  void place_batch(const data::Batch& b, int64_t row0, int64_t rows);
  TrainResult run();
};

}  // namespace attnlab::train
