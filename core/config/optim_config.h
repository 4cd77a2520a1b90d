#pragma once
// The optimizer's sections: `optim:` (AdamW or SGD, decay groups, clipping) and `schedule:`
// (warmup then cosine, linear or constant).
#include <cstdint>
#include <string>
#include <vector>

#include "core/config/field.h"

namespace attnlab::config {

enum class OptimizerKind : uint8_t { adamw, sgd };

struct OptimConfig {
  OptimizerKind name = OptimizerKind::adamw;
  double lr = 0;                 // peak learning rate
  double weight_decay = 0;       // decoupled (AdamW) / L2 (SGD), skipped for no_decay params
  std::vector<double> betas;     // AdamW (beta1, beta2)
  double eps = 0;                // AdamW
  double momentum = 0;           // SGD
  double grad_clip = 0;          // max global grad norm; 0: no clipping
  std::vector<std::string> no_decay;  // globs over HF parameter names
};

enum class ScheduleKind : uint8_t { cosine, linear, constant };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::cosine;
  int64_t warmup_steps = 0;  // linear warmup from 0 to optim.lr
  double min_lr_ratio = 0;   // decay ends at min_lr_ratio * optim.lr
};

void declare_fields(FieldBinder<OptimConfig>& f);
void declare_fields(FieldBinder<ScheduleConfig>& f);

}  // namespace attnlab::config
