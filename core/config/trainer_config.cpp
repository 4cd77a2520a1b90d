#include "core/config/trainer_config.h"

namespace attnlab::config {

void declare_fields(FieldBinder<TrainConfig>& f) {
  f.field("micro_batch", &TrainConfig::micro_batch, "sequences per micro-step on each rank (B)")
      .def(8)
      .range_closed(1, 1 << 16);
  f.field("grad_accum", &TrainConfig::grad_accum, "micro-steps accumulated per optimizer step")
      .def(1)
      .range_closed(1, 1 << 16);
  f.field("steps", &TrainConfig::steps, "optimizer steps to run; set this or epochs").at_least(1);
  f.field("epochs", &TrainConfig::epochs, "passes over the training split; set this or steps").at_least(1);
  f.field("max_tokens", &TrainConfig::max_tokens, "also stop after this many training tokens (all ranks)")
      .at_least(1);
  f.field("trainable", &TrainConfig::trainable,
          "globs over HF parameter names to train (e.g. \"*.k_proj.*\"); unset: all (kv_only: k/v projections)");
  f.field("max_bad_steps", &TrainConfig::max_bad_steps,
          "steps with a NaN/Inf loss or gradient are skipped; this many in a row stop training with an error")
      .def(5)
      .range_closed(1, 1 << 20);
}

void declare_fields(FieldBinder<EvalConfig>& f) {
  f.field("every_steps", &EvalConfig::every_steps, "evaluate every N optimizer steps and at the end; 0: never")
      .def(0)
      .at_least(0);
  f.field("every_epochs", &EvalConfig::every_epochs,
          "evaluate every N epochs (passes over the training split) and at the end; instead of every_steps")
      .at_least(1);
  f.field("batches", &EvalConfig::batches, "validation batches per evaluation").def(20).at_least(1);
  f.enum_field("best_metric", &EvalConfig::best_metric,
               {{"none", BestMetric::none}, {"val_loss", BestMetric::val_loss}},
               "keep a best checkpoint by this validation metric; none: keep no best")
      .def("none");
}

void declare_fields(FieldBinder<CheckpointConfig>& f) {
  f.field("every_steps", &CheckpointConfig::every_steps,
          "save every N optimizer steps; 0: only at the end and on SIGINT/SIGTERM")
      .def(0)
      .at_least(0);
  f.field("keep_last", &CheckpointConfig::keep_last, "checkpoints to keep (older ones are deleted); 0: all")
      .def(3)
      .at_least(0);
  f.field("resume", &CheckpointConfig::resume,
          "auto (latest complete checkpoint of this run, if any), never, or a checkpoint folder")
      .def("auto");
}

void declare_fields(FieldBinder<LogConfig>& f) {
  f.field("every_steps", &LogConfig::every_steps, "log metrics every N optimizer steps").def(10).at_least(1);
  f.field("metrics_file", &LogConfig::metrics_file, "metrics JSON lines file, relative to the run folder")
      .def("metrics.jsonl")
      .as_path();
  f.field("progress", &LogConfig::progress, "live progress line (step, loss, lr, tokens/s, MFU, ETA)").def(true);
  f.field("grad_norms", &LogConfig::grad_norms,
          "globs over parameter names (e.g. \"*attn.gate_*\"): each logged step also records grads_norm/<name>, the L2 "
          "norm of that parameter's gradient (not with distributed.zero1, whose ranks hold gradient shards)")
      .def(std::vector<std::string>{});
}

}  // namespace attnlab::config
