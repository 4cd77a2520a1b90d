#pragma once
// The `data:` section of an experiment config put to work: the reader options it stands for, the
// token shards (prepared or reused, data/token_shard.h) and the loaders over them
// (data/loader.h). `attnlab data prepare` and the trainer both go through here.
#include <memory>
#include <string>

#include "core/config/experiment.h"
#include "data/loader.h"
#include "data/sft.h"
#include "data/token_shard.h"

namespace attnlab::data {

CorpusOptions corpus_options(const config::DataConfig& d);
SftOptions sft_options(const config::DataConfig& d);  // format, field renames (chat family filled later)
// data.shard_dir, else <run.out_dir>/<run.name>/shards.
std::string shard_dir_of(const config::ExperimentConfig& cfg);

struct PreparedData {
  bool sft = false;
  std::string shard_dir;
  PrepareResult prepared;
  std::shared_ptr<const ShardSet> shards;
};

// Loads the tokenizer and prepares (or reuses) the shards of cfg.data; SFT records when
// data.sft_format is set, corpus documents otherwise. With several ranks, call it on rank 0 only,
// then a barrier, then open_prepared_data on the others: preparing rewrites the shard folder.
PreparedData prepare_data(const config::ExperimentConfig& cfg, const PrepareOptions& opt = {});

// The shards prepare_data left (for ranks other than 0); validates every shard and token.
PreparedData open_prepared_data(const config::ExperimentConfig& cfg);

// Loader options of the config (seed from run.seed, loss mask from data.loss_on) for one rank.
LoaderOptions loader_options(const config::ExperimentConfig& cfg, int rank = 0, int world = 1);
std::unique_ptr<BatchLoader> make_loader(const PreparedData& data, const LoaderOptions& opt, Split split);

}  // namespace attnlab::data
