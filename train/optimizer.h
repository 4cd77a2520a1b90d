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
// ZeRO-1 (a GradSync in zero1 mode): the gradients arrive reduce-scattered, and this rank keeps
// m, v (and the f32 masters of a bf16 model) only for its share of the flat gradient arena
// (GradSync::shard_ranges), about 1/world of the whole: each AdamW slot is the part of one
// parameter inside one share. The updated values are written into a staging copy of the
// parameters in the arena's layout, all-gathered bucket by bucket and copied back into the
// parameters. The gradient norm is the square root of the ranks' summed squared shard norms.
//
// State on disk (optimizer.safetensors, f32), the same with and without ZeRO-1 and for any number
// of ranks: "m.<name>", "v.<name>" for every trainable parameter, "master.<name>" for bf16 models;
// metadata "applied_steps" (AdamW's t − 1). With ZeRO-1 save() gathers the shards first, so every
// rank must call it; load() takes each rank's share of the full tensors.
#include <cstdint>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/config/optim_config.h"
#include "core/layers/param.h"
#include "core/memory.h"
#include "optim/param_table.h"

namespace attnlab::dist {
class Communicator;
}

namespace attnlab::train {

class GradSync;

// Whether weight decay applies to `name`: not when it matches one of the no_decay globs.
bool decays(const std::string& name, const std::vector<std::string>& no_decay_globs);

class TrainOptimizer {
 public:
  // The store's trainable set must be final (gradients allocated). `master_source`: for bf16
  // models, a store holding the f32 values to start the masters from (null: from the bf16
  // values). `sync`: the gradient reduction (its zero1 mode shards the state); null: none.
  TrainOptimizer(ParamStore& params, const config::OptimConfig& cfg, Ctx& ctx, const ParamStore* master_source,
                 GradSync* sync = nullptr, dist::Communicator* comm = nullptr);

  // Clip norm and NaN/Inf flag over every trainable gradient, then the AdamW update at `lr`
  // (skipped on the device when the flag is set). No host sync without ZeRO-1; with it, one read
  // of the shard norm (the norms of all ranks must meet) and the all-gather of the parameters.
  void step(Ctx& ctx, double lr);
  // Tells the optimizer whether the last step() was applied (the host read the flag): AdamW's
  // bias-correction count t advances only over applied updates, as with PyTorch's GradScaler.
  void record_outcome(bool applied) { applied_steps_ += applied ? 1 : 0; }

  const Tensor& grad_norm() const { return norm_.t(); }  // [1] f32: ‖g‖₂ of the last step()
  const Tensor& nonfinite() const { return nonfinite_.t(); }  // [1] i32: 1 when the last step() was skipped
  int64_t applied_steps() const { return applied_steps_; }
  int64_t trainable_numel() const { return trainable_numel_; }  // over all ranks' shares
  int64_t local_state_numel() const { return table_.total_numel(); }  // elements with m, v here
  size_t slot_count() const { return table_.size(); }
  bool has_separate_master() const { return separate_master_; }
  bool sharded() const { return sharded_; }

  // Writes the state to `path` when `write` (rank 0). With ZeRO-1 every rank must call it (the
  // shards are gathered first); without, only the writer needs to.
  void save(Ctx& ctx, const std::string& path, bool write = true) const;
  // Reads a state saved by save() for the same trainable set (any rank count, with or without
  // ZeRO-1); throws naming what does not match.
  void load(Ctx& ctx, const std::string& path);

 private:
  // One AdamW slot: elements [begin, begin + count) of a parameter (the whole parameter without
  // ZeRO-1), at `arena` in the flat gradient arena.
  struct Piece {
    Param* param;
    int64_t begin, count, arena;
    Tensor master, m, v;
  };
  static const Tensor& state_of(const Piece& pc, int which);  // 0 m, 1 v, 2 master
  // ZeRO-1: the trainable parameters' values into the staging copy (after they changed outside
  // step()), or back from it (after the all-gather).
  void copy_staging(Ctx& ctx, bool into_params);
  // The full state tensor `which` (0 m, 1 v, 2 master) of every parameter, gathered into `full`
  // ([arena] f32, arena layout) on every rank.
  void gather_state(Ctx& ctx, int which, const Tensor& full) const;

  ParamStore& params_;
  config::OptimConfig cfg_;
  GradSync* sync_ = nullptr;
  dist::Communicator* comm_ = nullptr;
  bool separate_master_ = false, sharded_ = false;
  std::vector<Piece> pieces_;
  Arena state_;
  ParamTable table_;
  Buffer staging_;   // ZeRO-1: every parameter's value in the arena layout (model dtype)
  Buffer reduce_;    // ZeRO-1: f64 [2] for the norm all-reduce
  Buffer sumsq_;     // ZeRO-1: f64 [1], this rank's Σ g² over its shares
  Buffer norm_, clip_scale_, nonfinite_;
  int64_t applied_steps_ = 0, trainable_numel_ = 0;
};

}  // namespace attnlab::train
