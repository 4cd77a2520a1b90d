#pragma once
// Gradient reduction across data-parallel ranks in buckets, overlapped with the backward pass
// (DESIGN.md §9).
//
// The ParamStore keeps every trainable gradient in one arena (param.h); GradSync views it as a
// flat vector of N elements (N rounded up to a multiple of world·64, so every bucket splits into
// world equal, 256-byte-aligned shares) and cuts it into buckets of about distributed.bucket_mb.
// Parameters are laid out in forward order and the backward finishes them from the last one to
// the first, so "every gradient at or above offset w is final" is a falling watermark: the model
// reports it after each block's backward (Model::set_grad_ready_hook), and every bucket lying
// wholly above it is launched at once — on NCCL the collective runs on the communicator's stream
// while the compute stream goes on with the earlier blocks; on MPI the non-blocking request is
// driven at each later report. finish() launches what is left and waits for everything.
//
// Two modes, chosen at construction:
//   all-reduce  every rank ends with the sum of every gradient (plain data parallelism);
//   ZeRO-1      reduce-scatter: rank r ends with the sum of its share of each bucket only,
//               [begin + r·n, begin + (r+1)·n) with n = bucket length / world; the rest of the
//               arena is unspecified. shard_ranges() lists the rank's shares: the optimizer
//               updates exactly those elements, and all_gather() brings the updated values back
//               to every rank bucket by bucket.
// The loss is already divided by the global target count (trainer.h), so sums are what is wanted.
//
// With gradient accumulation only the last micro-batch's backward may launch collectives: arm()
// before it. A step that reports nothing (a model without the hook) launches everything in
// finish().
#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "core/layers/param.h"

namespace attnlab::train {

struct ElementRange {
  int64_t begin = 0, count = 0;  // in elements of the flat arena
  int64_t end() const { return begin + count; }
};

class GradSync {
 public:
  // Pads the store's gradient arena (set_grad_arena_multiple) and plans the buckets. The store's
  // trainable set must be final. bucket_mb <= 0: one bucket.
  GradSync(ParamStore& params, dist::Communicator& comm, const Ctx& ctx, double bucket_mb, bool zero1);

  bool zero1() const { return zero1_; }
  const std::vector<ElementRange>& buckets() const { return buckets_; }  // highest offset first
  // ZeRO-1: this rank's share of every bucket (ascending offsets); all-reduce: the whole arena.
  const std::vector<ElementRange>& shard_ranges() const { return shard_; }
  int64_t arena_numel() const { return numel_; }

  // The next backward is the step's last: from now on watermark reports launch buckets.
  void arm();
  // Every gradient at offset >= `offset` is final (offset = the arena offset of the first
  // trainable parameter of the block just finished). Launches every bucket now wholly above it.
  void ready_from(int64_t offset);
  // The watermark of parameter p: the offset of the first trainable gradient registered at or
  // after p (ParamStore order). For a frozen block, the next trainable one up.
  int64_t watermark_of(const Param& p) const;
  // Launches the remaining buckets and waits for all of them (NCCL: the compute stream waits).
  void finish();

  // ZeRO-1: each rank's share of `values` (a flat [arena_numel()] buffer in the arena layout) to
  // every rank, bucket by bucket, in place. All-reduce mode: nothing to do.
  void all_gather(const Tensor& values);

 private:
  void launch(size_t bucket);
  void poll();

  dist::Communicator& comm_;
  ParamStore& params_;
  bool zero1_;
  int world_, rank_;
  int64_t numel_ = 0;
  std::vector<ElementRange> buckets_, shard_;
  std::vector<std::pair<const Param*, int64_t>> watermarks_;  // registration order
  size_t next_ = 0;  // buckets_[0, next_) are launched
  bool armed_ = false;
  std::vector<dist::CommHandle> pending_;
};

}  // namespace attnlab::train
