#pragma once
// An experiment config: the typed struct of every section, filled from a YAML file and
// key.path=value overrides by the strict loader, plus the resolved field list it came from.
//
//   ExperimentConfig cfg = load_experiment("experiments/x.yaml", {"optim.lr=1e-4"});
//   cfg.optim.lr; cfg.train.steps; cfg.model.attention.norm; ...
//   write_file(run_dir + "/config.yaml", print_resolved(cfg.resolved));
//
// The sections, their fields, defaults, ranges and docs are declared by the components that
// own them (*_config.cpp here); `attnlab config fields` lists them.
#include <string>
#include <vector>

#include "core/config/analysis_config.h"
#include "core/config/data_config.h"
#include "core/config/diagnostics.h"
#include "core/config/infra_config.h"
#include "core/config/model_config.h"
#include "core/config/optim_config.h"
#include "core/config/resolved.h"
#include "core/config/run_config.h"
#include "core/config/trainer_config.h"

namespace attnlab::config {

struct ExperimentConfig {
  Task task = Task::pretrain;
  RunConfig run;
  ModelSetupConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  ScheduleConfig schedule;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  DistributedConfig distributed;
  LogConfig log;
  ProfileConfig profile;
  AnalysisConfig analysis;

  ResolvedConfig resolved;  // every field's final value and source
  std::string source;       // the file it was loaded from
};

// Loads `path`, applies the overrides ("optim.lr=1e-4", "profile.steps=[10,20]") and checks
// every field and every cross-field rule. Throws one ConfigError listing every problem, each
// "FILE:LINE:COLUMN: message" or "command line: key=value: message".
ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text; `display_name` stands for the file name in messages.
ExperimentConfig load_experiment_text(const std::string& yaml_text, const std::string& display_name,
                                      const std::vector<std::string>& overrides = {});

}  // namespace attnlab::config
