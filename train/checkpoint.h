#pragma once
// Training checkpoints (DESIGN.md §8).
//
// <run>/checkpoints/step_00001200/     one per save, complete only when it holds DONE
//   config.json, model.safetensors    the weights with HF names (transformers opens the folder)
//   optimizer.safetensors             AdamW state (train/optimizer.h)
//   trainer_state.json                step, tokens, data cursor, RNG, the resolved config and its hash
//   DONE                              written last
// <run>/checkpoints/best/             the best by validation loss (weights and trainer state)
//
// Atomicity: files are written into a hidden temporary folder (.tmp-step_...-PID), each one
// fsynced, the folder fsynced and renamed to its final name, the parent fsynced, then DONE is
// written and fsynced. A crash at any point leaves either no folder, a hidden temporary one, or
// one without DONE, and resume never reads those. keep-last-N counts complete checkpoints only.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::train {

inline constexpr const char* kDoneMarker = "DONE";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kBestName = "best";

// Everything besides weights and optimizer state that an exact resume needs.
struct TrainerState {
  int64_t step = 0;            // optimizer steps taken (applied or skipped)
  int64_t total_steps = 0;     // of the whole run (the schedule's N)
  int64_t tokens = 0;          // training tokens seen by all ranks
  int64_t skipped_steps = 0;   // steps the NaN/Inf guard dropped
  int64_t consecutive_bad = 0;
  double elapsed_s = 0;        // training wall-clock over every session
  uint64_t rng_seed = 0;       // Ctx::seed and rng_offset: the dropout stream
  uint64_t rng_offset = 0;
  std::string loader_state;    // data::BatchLoader::state_json() of rank 0
  std::optional<double> best_val_loss;
  std::optional<int64_t> best_step;
  std::optional<double> last_val_loss;
  // The logging interval in progress (its mean loss is logged at the next logging step): kept so
  // a resumed run logs the very numbers the uninterrupted one would.
  double log_loss_sum = 0;
  int64_t log_loss_count = 0;
  int world_size = 1;
  std::string config_yaml;     // the resolved config (config::print_resolved)
  std::string config_hash;

  nlohmann::ordered_json to_json() const;
  // Throws naming `source` and the bad key.
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);
};

std::string checkpoint_root(const std::string& run_dir);  // <run>/checkpoints
std::string checkpoint_name(int64_t step);               // step_00001200

struct CheckpointRef {
  int64_t step = 0;
  std::string path;
};
// Complete step checkpoints (folders step_<N> holding DONE) under `root`, by step, oldest first.
std::vector<CheckpointRef> list_checkpoints(const std::string& root);
std::optional<CheckpointRef> latest_checkpoint(const std::string& root);
bool is_complete_checkpoint(const std::string& dir);
// Step folders under `root` without DONE (a save that did not finish), by step, oldest first:
// auto-resume passes over them and says so.
std::vector<CheckpointRef> incomplete_checkpoints(const std::string& root);

// Deletes every complete step checkpoint but the newest `keep_last` (0: keep all), every step
// folder without DONE older than the newest complete one, and leftover temporary folders.
// Returns the folders deleted.
std::vector<std::string> prune_checkpoints(const std::string& root, int64_t keep_last);

// A checkpoint being written: files go into dir(), commit() publishes it under its final name.
// Destroyed without commit (an exception while writing), it removes its temporary folder.
class CheckpointWriter {
 public:
  CheckpointWriter(const std::string& root, const std::string& name);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  const std::string& dir() const { return tmp_; }
  // fsyncs every file and the folder, replaces root/name (an older or incomplete folder of that
  // name goes), fsyncs root, writes DONE. Returns the final path.
  std::string commit();

 private:
  std::string root_, name_, tmp_;
  bool committed_ = false;
};

// Writes `text` to `path` and fsyncs it (used for trainer_state.json, DONE).
void write_file_synced(const std::string& path, const std::string& text);
std::string read_file_text(const std::string& path);

}  // namespace attnlab::train
