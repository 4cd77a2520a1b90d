#pragma once
// The experiment's `data:` section (with run.seed and the run folder) → the data pipeline's own
// config (data/dataset.h). data/ never sees the experiment; this is the one place that converts.
#include <string>

#include "core/config/experiment.h"
#include "data/dataset.h"

namespace attnlab::train {

data::DatasetConfig dataset_config(const config::ExperimentConfig& cfg);
// The reader options of the section (path as written; data::corpus_source resolves it).
data::CorpusOptions corpus_options(const config::DataConfig& d);
// Format and field renames (chat family filled later); data.sft_format must be set.
data::SftOptions sft_options(const config::DataConfig& d);
// data.shard_dir, else <run.out_dir>/<run.name>/shards.
std::string shard_dir_of(const config::ExperimentConfig& cfg);

}  // namespace attnlab::train
