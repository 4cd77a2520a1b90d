#pragma once
// Learning-rate schedules (METHODS P13, HF's get_*_schedule_with_warmup): a linear warmup from 0
// over W steps, then cosine, linear or constant over the remaining N − W steps.
//
//   t < W:     lr·t/W
//   cosine:    floor + (lr − floor)·0.5·(1 + cos(π·(t − W)/(N − W)))
//   linear:    floor + (lr − floor)·max(0, (N − t)/(N − W))
//   constant:  lr
// with floor = min_lr_ratio·lr (0 gives HF's schedules exactly). t is the 0-based index of the
// optimizer step being taken, as in HF (the first step of a warmup therefore runs at lr 0); steps
// past N stay at the floor. With W >= N the whole run is warmup.
#include <cstdint>

#include "core/config/optim_config.h"

namespace attnlab::train {

struct LrSchedule {
  config::ScheduleKind kind = config::ScheduleKind::cosine;
  double peak_lr = 0;
  int64_t warmup_steps = 0;  // W
  int64_t total_steps = 0;   // N, optimizer steps of the whole run
  double min_lr_ratio = 0;

  static LrSchedule from_config(const config::ScheduleConfig& s, double peak_lr, int64_t total_steps);
  // The learning rate of optimizer step t (0-based).
  double lr_at(int64_t t) const;
};

}  // namespace attnlab::train
