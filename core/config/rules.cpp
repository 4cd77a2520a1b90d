#include "core/config/rules.h"

#include <cstdint>
#include <limits>

#include "core/config/experiment.h"
#include "core/config/registry.h"

namespace attnlab::config {

bool RuleContext::non_default(const std::string& path) const {
  for (const FieldSpec& f : core_fields())
    if (f.path == path) return !f.has_default || resolved.at(path).value != f.default_value;
  FAIL_WITH("config rule reads '", path, "', which is not a core field");
}

namespace {

std::string text_of(const RuleContext& c, const std::string& path) { return format_value(c.resolved.at(path).value); }

Violation blame(std::vector<std::string> paths, std::string message) { return {std::move(paths), std::move(message)}; }

std::vector<CrossFieldRule> build_rules() {
  std::vector<CrossFieldRule> r;

  r.push_back({"train.steps and train.epochs are exclusive", {"train.steps", "train.epochs"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.train.steps && c.cfg.train.epochs)
                   return blame({"train.epochs", "train.steps"},
                                "train.steps and train.epochs are both set; keep one (steps counts optimizer steps, "
                                "epochs counts passes over the data)");
                 return std::nullopt;
               }});
  r.push_back({"one of train.steps or train.epochs says how long to train", {"train.steps", "train.epochs"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (!c.cfg.train.steps && !c.cfg.train.epochs)
                   return blame({"train.steps"}, "set train.steps or train.epochs: nothing says how long to train");
                 return std::nullopt;
               }});
  r.push_back({"profile.steps is [start, end) with start < end", {"profile.steps"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const auto& p = c.cfg.profile;
                 if (p.steps && p.start() >= p.end())
                   return blame({"profile.steps"}, "profile.steps: start (" + std::to_string(p.start()) +
                                                       ") must be less than end (" + std::to_string(p.end()) + ")");
                 return std::nullopt;
               }});
  r.push_back({"profile.steps ends within train.steps", {"profile.steps", "train.steps"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const auto& p = c.cfg.profile;
                 if (p.steps && c.cfg.train.steps && p.end() > *c.cfg.train.steps)
                   return blame({"profile.steps", "train.steps"},
                                "profile.steps ends at step " + std::to_string(p.end()) + ", after the last step (" +
                                    "train.steps: " + std::to_string(*c.cfg.train.steps) + ")");
                 return std::nullopt;
               }});
  r.push_back({"task kv_only fixes the trainable set to k_proj/v_proj", {"task", "train.trainable"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.task == Task::kv_only && c.cfg.train.trainable)
                   return blame({"train.trainable", "task"},
                                "task kv_only trains only the k_proj/v_proj weights; remove train.trainable (or use "
                                "task sft with your own trainable globs)");
                 return std::nullopt;
               }});
  r.push_back({"task kv_only fine-tunes pretrained weights", {"task", "model.from"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.task == Task::kv_only && c.cfg.model.random_init())
                   return blame({"model.from", "task"}, "task kv_only fine-tunes pretrained weights, but model.from is " +
                                                            c.cfg.model.from + " (random weights); point it at an HF folder");
                 return std::nullopt;
               }});
  r.push_back({"task sft needs data.sft_format", {"task", "data.sft_format"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.task == Task::sft && !c.cfg.data.sft_format)
                   return blame({"task", "data.sft_format"},
                                "task sft needs data.sft_format (openr1, openmath, gsm8k or sst) to read its records");
                 return std::nullopt;
               }});
  r.push_back({"data.sft_format is not read by task pretrain", {"task", "data.sft_format"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.task == Task::pretrain && c.cfg.data.sft_format)
                   return blame({"data.sft_format", "task"},
                                "data.sft_format is set but task pretrain reads plain documents; remove it or use task sft");
                 return std::nullopt;
               }});
  r.push_back({"data.fields renames the fields of data.sft_format", {"data.fields", "data.sft_format"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (!c.cfg.data.fields.empty() && !c.cfg.data.sft_format)
                   return blame({"data.fields"}, "data.fields renames SFT record fields, but data.sft_format is not set");
                 return std::nullopt;
               }});
  r.push_back({"SFT records are JSON lines (sst: jsonl or tsv)", {"data.format", "data.sft_format"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const auto& d = c.cfg.data;
                 if (!d.sft_format) return std::nullopt;
                 const bool jsonl = d.format == DataFormat::jsonl;
                 const bool ok = jsonl || (*d.sft_format == SftFormat::sst && d.format == DataFormat::tsv);
                 if (ok) return std::nullopt;
                 return blame({"data.format", "data.sft_format"},
                              "data.sft_format " + text_of(c, "data.sft_format") + " reads " +
                                  (*d.sft_format == SftFormat::sst ? "jsonl or tsv" : "jsonl") +
                                  " records, but data.format is " + text_of(c, "data.format"));
               }});
  r.push_back({"data.loss_on: assistant needs SFT records", {"data.loss_on", "data.sft_format"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.data.loss_on == LossOn::assistant && !c.cfg.data.sft_format)
                   return blame({"data.loss_on"},
                                "data.loss_on: assistant masks non-assistant tokens, which needs SFT records "
                                "(data.sft_format); plain documents have no roles");
                 return std::nullopt;
               }});
  r.push_back({"model.attention.ramp_alpha only with norm: ramp", {"model.attention.norm", "model.attention.ramp_alpha"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const auto& a = c.cfg.model.attention;
                 if (a.ramp_alpha && a.norm != "ramp")
                   return blame({"model.attention.ramp_alpha"},
                                "model.attention.ramp_alpha is set but model.attention.norm is " +
                                    text_of(c, "model.attention.norm") + "; set norm: ramp or remove ramp_alpha");
                 return std::nullopt;
               }});
  r.push_back({"model.attention.norm: ramp needs ramp_alpha", {"model.attention.norm", "model.attention.ramp_alpha"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const auto& a = c.cfg.model.attention;
                 if (a.norm == "ramp" && !a.ramp_alpha)
                   return blame({"model.attention.norm"},
                                "model.attention.norm: ramp needs model.attention.ramp_alpha (the weight of linear in "
                                "alpha*linear + (1-alpha)*softmax)");
                 return std::nullopt;
               }});
  r.push_back({"schedule.warmup_steps is shorter than train.steps", {"schedule.warmup_steps", "train.steps"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const int64_t w = c.cfg.schedule.warmup_steps;
                 if (c.cfg.train.steps && w >= *c.cfg.train.steps)
                   return blame({"schedule.warmup_steps", "train.steps"},
                                "schedule.warmup_steps (" + std::to_string(w) + ") must be less than train.steps (" +
                                    std::to_string(*c.cfg.train.steps) + ")");
                 return std::nullopt;
               }});
  r.push_back({"micro_batch * grad_accum * seq_len tokens per step fit in 32 bits",
               {"train.micro_batch", "train.grad_accum", "data.seq_len"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 // Each factor is range-limited (2^16, 2^16, 2^20), so the product fits in int64.
                 const int64_t tokens = c.cfg.train.micro_batch * c.cfg.train.grad_accum * c.cfg.data.seq_len;
                 if (tokens > std::numeric_limits<int32_t>::max())
                   return blame({"train.micro_batch", "train.grad_accum", "data.seq_len"},
                                "train.micro_batch * train.grad_accum * data.seq_len = " + std::to_string(tokens) +
                                    " tokens per optimizer step per rank; the limit is 2^31-1 (token counts are 32-bit)");
                 return std::nullopt;
               }});
  r.push_back({"run.dtype bf16 needs cuda", {"run.device", "run.dtype"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.run.device == DeviceChoice::cpu && c.cfg.run.dtype == DType::bf16)
                   return blame({"run.dtype", "run.device"},
                                "run.dtype bf16 runs on cuda only; the CPU backend computes in f32 (set run.dtype: f32)");
                 return std::nullopt;
               }});
  r.push_back({"distributed.backend matches run.device (nccl: cuda, mpi: cpu)", {"run.device", "distributed.backend"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const auto dev = c.cfg.run.device;
                 const auto be = c.cfg.distributed.backend;
                 if (dev == DeviceChoice::cpu && be == DistBackend::nccl)
                   return blame({"distributed.backend", "run.device"},
                                "distributed.backend nccl needs GPUs but run.device is cpu; use mpi (or auto)");
                 if (dev == DeviceChoice::cuda && be == DistBackend::mpi)
                   return blame({"distributed.backend", "run.device"},
                                "distributed.backend mpi is the CPU backend but run.device is cuda; use nccl (or auto)");
                 return std::nullopt;
               }});
  r.push_back({"distributed.zero1 needs a backend", {"distributed.zero1", "distributed.backend"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.distributed.zero1 && c.cfg.distributed.backend == DistBackend::none)
                   return blame({"distributed.zero1", "distributed.backend"},
                                "distributed.zero1 shards optimizer state across ranks, but distributed.backend is none");
                 return std::nullopt;
               }});
  r.push_back({"eval.every_steps and eval.every_epochs are exclusive", {"eval.every_steps", "eval.every_epochs"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.eval.every_steps > 0 && c.cfg.eval.every_epochs)
                   return blame({"eval.every_epochs", "eval.every_steps"},
                                "eval.every_steps and eval.every_epochs are both set; keep one");
                 return std::nullopt;
               }});
  r.push_back({"evaluation needs a validation split", {"eval.every_steps", "eval.every_epochs", "data.val_fraction"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const EvalConfig& e = c.cfg.eval;
                 if ((e.every_steps > 0 || e.every_epochs) && c.cfg.data.val_fraction == 0)
                   return blame({"eval.every_steps", "eval.every_epochs", "data.val_fraction"},
                                (e.every_epochs ? "eval.every_epochs is " + std::to_string(*e.every_epochs)
                                                : "eval.every_steps is " + std::to_string(e.every_steps)) +
                                    " but data.val_fraction is 0: there is no validation split to evaluate on");
                 return std::nullopt;
               }});
  r.push_back({"eval.best_metric needs evaluation (eval.every_steps > 0 or eval.every_epochs)",
               {"eval.best_metric", "eval.every_steps", "eval.every_epochs"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 if (c.cfg.eval.best_metric != BestMetric::none && c.cfg.eval.every_steps == 0 && !c.cfg.eval.every_epochs)
                   return blame({"eval.best_metric", "eval.every_steps"},
                                "eval.best_metric is " + text_of(c, "eval.best_metric") +
                                    " but eval.every_steps is 0 (no evaluation); set eval.every_steps, "
                                    "eval.every_epochs or best_metric: none");
                 return std::nullopt;
               }});
  r.push_back({"AdamW settings (betas, eps) differ from their defaults only with adamw, momentum only with sgd", {"optim.name", "optim.betas", "optim.eps", "optim.momentum"},
               [](const RuleContext& c) -> std::optional<Violation> {
                 const bool sgd = c.cfg.optim.name == OptimizerKind::sgd;
                 for (const char* p : {"optim.betas", "optim.eps"})
                   if (sgd && c.non_default(p))
                     return blame({p, "optim.name"}, std::string(p) + " is an AdamW setting, but optim.name is sgd");
                 if (!sgd && c.non_default("optim.momentum"))
                   return blame({"optim.momentum", "optim.name"},
                                "optim.momentum is an SGD setting, but optim.name is adamw");
                 return std::nullopt;
               }});
  return r;
}

}  // namespace

const std::vector<CrossFieldRule>& cross_field_rules() {
  static const std::vector<CrossFieldRule> rules = build_rules();
  return rules;
}

}  // namespace attnlab::config
