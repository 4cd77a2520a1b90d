#pragma once
// What the user watches while training: a live line on a terminal (rewritten in place every
// step, left standing at each logging step), plain lines at the logging interval otherwise (log
// files, CI), and the numbers behind them: model FLOPs per token and the device's peak, for MFU.
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/ctx.h"
#include "core/io/hf_config.h"

namespace attnlab::train {

// Training FLOPs per token, llm.c's count (PERFORMANCE.md): 6·N for the parameter GEMMs forward
// and backward plus 6·L·(Hq·d)·T for attention's two T-long products per layer.
double flops_per_token(const ModelConfig& c, int64_t num_params, int64_t seq_len);
// The same from the numbers: 6·N + 6·layers·attention_width·seq_len.
double flops_per_token(int64_t layers, int64_t attention_width, int64_t num_params, int64_t seq_len);

// Dense peak of the device for the run's dtype, FLOP/s; 0 when unknown (MFU is then not shown).
struct DevicePeak {
  double flops_per_s = 0;
  std::string what;  // "H100 bf16 dense (datasheet)", "CPU 2 threads x 2.4 GHz x 32 f32 FLOP/cycle (estimate)"
};
DevicePeak device_peak(const Ctx& ctx, DType dtype);

struct ProgressLine {
  int64_t step = 0, total_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0;
  double mfu = -1;    // fraction; < 0: unknown
  double eta_s = -1;  // < 0: unknown
  int64_t skipped = 0;
};

// "step 120/2000 | loss 5.4321 | lr 3.00e-04 | gnorm 0.812 | 41.2k tok/s | MFU 12.3% | ETA 4m12s"
std::string format_progress(const ProgressLine& p);
std::string format_duration(double seconds);  // "4m12s", "1h03m", "12s"

class Progress {
 public:
  // live: rewrite one line in place (only when `out` is a terminal); otherwise print lines.
  Progress(std::FILE* out, bool enabled);
  ~Progress();
  bool live() const { return live_; }
  // Every step on a terminal; at the logging interval (log = true) otherwise.
  void update(const ProgressLine& p, bool log_step);
  // A message on its own line, without tearing the live line apart.
  void message(const std::string& text);
  // Ends the live line (newline) so what follows starts on a fresh line.
  void finish();

 private:
  std::FILE* out_;
  bool enabled_, live_;
  bool line_open_ = false;
};

}  // namespace attnlab::train
