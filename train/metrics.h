#pragma once
// metrics.jsonl: one JSON object per line, written as training goes.
//   {"kind": "train", "step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s", ...}
//   {"kind": "eval",  "step", "val_loss", "val_tokens", "best", "elapsed_s"}
// `step` counts optimizer steps taken (1 after the first); `tokens` the training tokens seen by
// all ranks so far; `elapsed_s` the training wall-clock, summed over resumed sessions.
//
// A resumed run continues the file of the run it resumes: records after the checkpoint's step
// (written by the session that was interrupted) are dropped first, so every step appears once.
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace attnlab::train {

class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Starts a new file (truncating an old one) when resumed_step < 0; otherwise keeps the records
  // whose step is at most resumed_step and appends after them.
  void open(const std::string& path, int64_t resumed_step);
  // Writes one record as a line and flushes it (a crash loses at most the line being written).
  void write(const nlohmann::ordered_json& record);
  const std::string& path() const { return path_; }
  bool is_open() const { return file_ != nullptr; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Reads a metrics file back (tests, tools): every record, in order. Throws on a malformed line.
std::vector<nlohmann::json> read_metrics(const std::string& path);

}  // namespace attnlab::train
