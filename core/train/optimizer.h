#pragma once
// The trainer's optimizer: AdamW (optim/adamw.h) over the trainable parameters, with decay groups
// from optim.no_decay, fp32 master weights for bf16 models, and global-norm clipping fed straight
// into AdamW on the device (optim/grad_norm.h: the clip scale becomes AdamW's grad_scale and the
// NaN/Inf flag its skip input, so a bad step changes nothing without the host deciding first).
//
// Master weights: an f32 model's parameter values are the master weights themselves; a bf16
// model gets separate f32 masters and AdamW rewrites the bf16 working copy from them. Gradients
// are f32 either way (Param::grad).
//
// State on disk (optimizer.safetensors, f32): "m.<name>", "v.<name>" for every trainable
// parameter, "master.<name>" for bf16 models; metadata "applied_steps" (AdamW's t − 1).
// Padding rows of a padded vocabulary (Param::pad_rows) are outside the optimizer: no state, never
// updated, not on disk (the state file is the same with padding on or off).
#include <cstdint>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/config/optim_config.h"
#include "core/memory.h"
#include "core/models/model.h"
#include "optim/param_table.h"

namespace attnlab::train {

// Whether weight decay applies to `name`: not when it matches one of the no_decay globs.
bool decays(const std::string& name, const std::vector<std::string>& no_decay_globs);

class TrainOptimizer {
 public:
  // The model's trainable set must be final (gradients allocated). `master_source`: for bf16
  // models, a model holding the f32 values to start the masters from (null: from the bf16 values).
  TrainOptimizer(Model& model, const config::OptimConfig& cfg, Ctx& ctx, const Model* master_source);

  // Clip norm and NaN/Inf flag over every trainable gradient, then the AdamW update at `lr`
  // (skipped on the device when the flag is set). No host sync.
  void step(Ctx& ctx, double lr);
  // Tells the optimizer whether the last step() was applied (the host read the flag): AdamW's
  // bias-correction count t advances only over applied updates, as with PyTorch's GradScaler.
  void record_outcome(bool applied) { applied_steps_ += applied ? 1 : 0; }

  const Tensor& grad_norm() const { return norm_.t(); }  // [1] f32: ‖g‖₂ of the last step()
  const Tensor& nonfinite() const { return nonfinite_.t(); }  // [1] i32: 1 when the last step() was skipped
  int64_t applied_steps() const { return applied_steps_; }
  int64_t trainable_numel() const { return table_.total_numel(); }
  size_t slot_count() const { return table_.size(); }
  bool has_separate_master() const { return separate_master_; }

  void save(Ctx& ctx, const std::string& path) const;
  // Reads a state saved by save() for the same trainable set; throws naming what does not match.
  void load(Ctx& ctx, const std::string& path);

 private:
  struct Entry {
    Param* param;
    Tensor master, m, v;
  };
  Model& model_;
  config::OptimConfig cfg_;
  bool separate_master_ = false;
  std::vector<Entry> entries_;
  Arena state_;
  ParamTable table_;
  Buffer norm_, clip_scale_, nonfinite_;
  int64_t applied_steps_ = 0;
};

}  // namespace attnlab::train
