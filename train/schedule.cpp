#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace attnlab::train {

LrSchedule LrSchedule::from_config(const config::ScheduleConfig& s, double peak_lr, int64_t total_steps) {
  CHECK(total_steps >= 1, "schedule: the run has ", total_steps, " optimizer steps; it needs at least 1");
  // A warmup as long as the run is allowed, as in HF (an epochs-based run may turn out shorter than
  // its warmup): the learning rate then never reaches its peak. train.steps runs are held to
  // warmup < steps by a config rule.
  CHECK(s.warmup_steps >= 0, "schedule.warmup_steps must be >= 0, got ", s.warmup_steps);
  LrSchedule r;
  r.kind = s.kind;
  r.peak_lr = peak_lr;
  r.warmup_steps = s.warmup_steps;
  r.total_steps = total_steps;
  r.min_lr_ratio = s.min_lr_ratio;
  return r;
}

double LrSchedule::lr_at(int64_t t) const {
  if (t < warmup_steps) return peak_lr * double(t) / double(warmup_steps);
  if (kind == config::ScheduleKind::constant) return peak_lr;
  const double floor = min_lr_ratio * peak_lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps);
  const double done = std::min(1.0, double(t - warmup_steps) / double(decay_steps));
  double shape = 0;
  if (kind == config::ScheduleKind::cosine) shape = 0.5 * (1.0 + std::cos(M_PI * done));
  else shape = 1.0 - done;  // linear: (N − t)/(N − W)
  return floor + (peak_lr - floor) * shape;
}

}  // namespace attnlab::train
