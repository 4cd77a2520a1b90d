#pragma once
// Loaders: batches of token ids and targets from memory-mapped token shards (token_shard.h).
//
// Pretraining (PretrainLoader): the split's documents, each followed by EOS, form one token
// stream; sequence k is the window stream[k*T, k*T + T + 1) (T = seq_len), so inputs are its
// first T tokens and targets its last T (shifted by one), and every stream token after the first
// is a target exactly once. Empty documents are skipped.
//
// SFT (SftLoader): one record per row. A row of L tokens has inputs ids[0..L) and targets
// ids[1..L) then -100 (so the model sees exactly the record, as HF's causal-LM collator does);
// a target is -100 where it is masked (loss on targets only: the record's mask is 0 there) or
// padding. Rows are padded with the pad id to the batch's longest record (or to seq_len).
// Records longer than seq_len tokens are dropped and counted (METHODS §1.6 drops > 2048).
//
// Order and ranks (both loaders): items (sequences or records) are visited in a permutation
// drawn from (seed, epoch) — the same on every rank — and rank r of w takes positions r, r+w,
// r+2w, ... of it. With RemainderPolicy::pad (the training default, like PyTorch's
// DistributedSampler) the last round wraps to the start of the permutation so every rank gets
// ceil(n/w) items and the ranks together cover every item; `drop` gives floor(n/w) each; `uneven`
// (always used for validation) gives the ranks whatever is left, without repeats.
//
// Validation split: a seeded choice of round(val_fraction * documents) documents (records for
// SFT), at least one when val_fraction > 0, never all; validation is read in order, unshuffled.
//
// Resume: the cursor (epoch, position within this rank's share of the epoch) is the whole state.
// state_json() records it with what it is valid for (seed, world size, item count, data hash);
// restore_state() checks those and continues exactly where the saved loader stood. Ranks move in
// lockstep, so rank 0's state restores every rank.
// Another number of ranks: the saved ranks had consumed g = offset + position·w_saved positions of
// the epoch's permutation together; the new ranks take the rest of that epoch from g on (rank r:
// positions g + r, g + r + w, ...; the cursor's `offset` is g) and every later epoch as usual. No
// item is skipped or repeated within the epoch, whatever the two rank counts.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_shard.h"

namespace attnlab::data {

inline constexpr int32_t kIgnoreTarget = -100;

enum class Split { train, validation };
enum class RemainderPolicy { pad, drop, uneven };

// A permutation of 0..n-1 drawn from (seed, stream) by a Fisher-Yates shuffle with SeededRng
// (data/seeded_rng.h); identical on every platform.
std::vector<uint64_t> seeded_permutation(uint64_t n, uint64_t seed, uint64_t stream);

// The seeded validation split of `n` documents: sorted lists of training and validation indices.
struct DocSplit {
  std::vector<uint64_t> train, validation;
};
DocSplit split_documents(uint64_t n, double val_fraction, uint64_t seed);

struct LoaderOptions {
  int64_t seq_len = 1024;
  double val_fraction = 0;
  uint64_t seed = 0;
  int rank = 0, world = 1;
  bool shuffle = true;                             // training order; validation is never shuffled
  RemainderPolicy remainder = RemainderPolicy::pad;  // training; validation is always `uneven`
  // SFT only.
  bool loss_on_targets_only = false;  // false: every real token is a target (METHODS §1.6 default)
  bool pad_to_seq_len = false;        // pad every row to seq_len instead of the batch's longest
  int32_t pad_id = -1;                // -1: the shards' EOS id
};

// One micro-batch, row-major [rows, cols].
struct Batch {
  int64_t rows = 0, cols = 0;
  std::vector<int32_t> inputs, targets;
  std::vector<int32_t> lengths;  // real (unpadded) tokens per row
  std::vector<uint64_t> items;   // each row's item: sequence index, or index among the kept records
  int64_t target_count = 0;      // targets that are not kIgnoreTarget
};

struct LoaderCursor {
  uint64_t epoch = 0;
  uint64_t position = 0;  // within this rank's share of the epoch
  uint64_t offset = 0;    // positions of this epoch consumed before a change of rank count
  bool operator==(const LoaderCursor&) const = default;
};

// The order of `items` for one rank, epoch by epoch (see the top of this file).
class EpochSampler {
 public:
  EpochSampler(uint64_t items, uint64_t seed, bool shuffle, int rank, int world, RemainderPolicy remainder);
  uint64_t items() const { return items_; }
  uint64_t per_rank() const { return per_rank_; }  // positions of this rank in one epoch
  // Positions of this rank in what is left of an epoch after `offset` positions were consumed.
  uint64_t per_rank(uint64_t offset) const;
  uint64_t item(uint64_t epoch, uint64_t position, uint64_t offset = 0);

 private:
  uint64_t items_, seed_;
  bool shuffle_;
  RemainderPolicy remainder_;
  int rank_, world_;
  uint64_t per_rank_ = 0;
  uint64_t cached_epoch_ = ~uint64_t(0);
  std::vector<uint64_t> order_;
};

// What both loaders share: the sampler, the cursor and its saved form.
class BatchLoader {
 public:
  virtual ~BatchLoader() = default;
  // Training: always fills `batch_size` rows, moving on to the next epoch when this one ends.
  // Validation: fills up to `batch_size` rows of the single pass; false once the pass is done
  // (call rewind() to read it again).
  bool next(Batch& out, int64_t batch_size);
  void rewind() { cursor_ = {}; }
  uint64_t items() const { return sampler_.items(); }  // sequences or records in this split
  uint64_t items_per_rank_per_epoch() const { return sampler_.per_rank(); }
  Split split() const { return split_; }
  const LoaderCursor& cursor() const { return cursor_; }
  void set_cursor(const LoaderCursor& c) { cursor_ = c; }
  std::string state_json() const;
  void restore_state(const std::string& json);  // throws when the state is for other data or ranks

 protected:
  BatchLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split, uint64_t items,
              const char* kind);
  // Fills rows[0..n) of a batch whose items are given; sets cols, inputs, targets, lengths.
  virtual void fill(Batch& out, const std::vector<uint64_t>& items) const = 0;

  std::shared_ptr<const ShardSet> shards_;
  LoaderOptions opt_;
  Split split_;
  const char* kind_;
  EpochSampler sampler_;
  LoaderCursor cursor_;
};

class PretrainLoader : public BatchLoader {
 public:
  PretrainLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split);
  uint64_t stream_tokens() const { return prefix_.back(); }
  uint64_t documents() const { return docs_.size(); }
  // The T+1 tokens of sequence k.
  void read_window(uint64_t k, int32_t* out) const;

 private:
  struct Packing {
    std::vector<uint64_t> docs, prefix;
  };
  PretrainLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split, Packing packing);
  void fill(Batch& out, const std::vector<uint64_t>& items) const override;
  std::vector<uint64_t> docs_;     // global document indices of this split (non-empty ones)
  std::vector<uint64_t> prefix_;   // stream offset of each document; last = stream length
  int32_t eos_;
};

class SftLoader : public BatchLoader {
 public:
  SftLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split);
  uint64_t records_in_split() const { return in_split_; }
  uint64_t dropped_too_long() const { return dropped_too_long_; }
  uint64_t kept() const { return records_.size(); }
  uint64_t record_of(uint64_t item) const { return records_.at(item); }  // global record index

 private:
  struct Selection {
    std::vector<uint64_t> kept;
    uint64_t in_split = 0, dropped = 0;
  };
  SftLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split, Selection sel);
  void fill(Batch& out, const std::vector<uint64_t>& items) const override;
  std::vector<uint64_t> records_;  // global record indices that survived
  uint64_t in_split_ = 0, dropped_too_long_ = 0;
  int32_t pad_id_;
};

}  // namespace attnlab::data
