#pragma once
// What `attnlab validate` and `attnlab train` check after the schema and the cross-field rules:
// that a model can be built from the config. init:<arch> overrides (model.arch) must name keys the
// architecture has and give shapes it can build (heads dividing the width, ...); the attention
// options must be a combination some layer implements on that model (attention_options.h: options
// of another variant, impl: fused where the kernels cannot run, a from-scratch decoder's preset contradicted), and
// model.decoder's options (decoder_options.h) are for the from-scratch decoders only. Each problem points at the key's FILE:LINE:COLUMN (or the
// command-line override) like the loader's own.
//
// Kept out of load_experiment because it reads the model folder's config.json and the reference
// configs: the loader checks the file against the schema, this checks it against the models.
#include <vector>

#include "core/config/diagnostics.h"
#include "core/config/experiment.h"

namespace attnlab::config {

std::vector<Problem> buildability_problems(const ExperimentConfig& cfg);
// Throws ConfigError with every problem (nothing is written before this passes).
void check_buildable(const ExperimentConfig& cfg);
// load_experiment + check_buildable: what validate and train accept.
ExperimentConfig load_runnable_experiment(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace attnlab::config
