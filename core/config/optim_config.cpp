#include "core/config/optim_config.h"

namespace attnlab::config {

void declare_fields(FieldBinder<OptimConfig>& f) {
  f.enum_field("name", &OptimConfig::name, {{"adamw", OptimizerKind::adamw}, {"sgd", OptimizerKind::sgd}},
               "optimizer: adamw (fp32 master weights and moments) or sgd")
      .def("adamw");
  f.field("lr", &OptimConfig::lr, "peak learning rate, reached at the end of warmup").def(3e-4).range_open_closed(0, 10);
  f.field("weight_decay", &OptimConfig::weight_decay, "weight decay for parameters not matched by no_decay")
      .def(0.0)
      .range_closed(0, 1);
  f.field("betas", &OptimConfig::betas, "AdamW moment decay rates [beta1, beta2]")
      .def(std::vector<double>{0.9, 0.999})
      .range_closed_open(0, 1)
      .fixed_length(2);
  f.field("eps", &OptimConfig::eps, "AdamW denominator epsilon").def(1e-8).range_open_closed(0, 1);
  f.field("momentum", &OptimConfig::momentum, "SGD momentum; 0: plain SGD").def(0.0).range_closed_open(0, 1);
  f.field("grad_clip", &OptimConfig::grad_clip, "clip the global gradient norm to this; 0: no clipping")
      .def(1.0)
      .at_least(0);
  f.field("no_decay", &OptimConfig::no_decay, "globs over HF parameter names exempt from weight decay")
      .def(std::vector<std::string>{"*.bias", "*norm*", "*ln_*"});
}

void declare_fields(FieldBinder<ScheduleConfig>& f) {
  f.enum_field("kind", &ScheduleConfig::kind,
               {{"cosine", ScheduleKind::cosine}, {"linear", ScheduleKind::linear}, {"constant", ScheduleKind::constant}},
               "learning-rate decay after warmup: cosine, linear, or constant")
      .def("cosine");
  f.field("warmup_steps", &ScheduleConfig::warmup_steps, "linear warmup from 0 to optim.lr over N steps")
      .def(0)
      .at_least(0);
  f.field("min_lr_ratio", &ScheduleConfig::min_lr_ratio, "the decay ends at min_lr_ratio * optim.lr")
      .def(0.1)
      .range_closed(0, 1);
}

}  // namespace attnlab::config
