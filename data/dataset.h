#pragma once
// The data pipeline's own config put to work: the token shards (prepared or reused,
// data/token_shard.h) and the loaders over them (data/loader.h). `attnlab data prepare` and the
// trainer both go through here. data/ takes this DatasetConfig, not the experiment (DESIGN.md §2):
// the experiment's `data:` section becomes one in train/data_config.h.
#include <memory>
#include <optional>
#include <string>

#include "data/corpus.h"
#include "data/loader.h"
#include "data/sft.h"
#include "data/token_shard.h"

namespace attnlab::data {

struct DatasetConfig {
  CorpusOptions source;          // the reader; source.path as written ("assets:REL" names the asset cache)
  std::optional<SftOptions> sft; // SFT records (schema, field renames); nullopt: corpus documents
  std::string tokenizer;         // "gpt2", "bytes", or a tokenizer folder/file (Tokenizer::load)
  std::string shard_dir;         // where the shards are written / read
  int64_t seq_len = 1024;        // loader rows
  double val_fraction = 0;
  uint64_t seed = 0;             // split and shuffle
  bool loss_on_targets_only = false;  // SFT: loss on the assistant's tokens only
};

// The reader options with the path resolved (an "assets:REL" path to its folder in the cache).
CorpusOptions corpus_source(const DatasetConfig& d);

struct PreparedData {
  bool sft = false;
  std::string shard_dir;
  PrepareResult prepared;
  std::shared_ptr<const ShardSet> shards;
};

// Loads the tokenizer and prepares (or reuses) the shards; SFT records when d.sft is set, corpus
// documents otherwise. With several ranks, call it on rank 0 only, then a barrier, then
// open_prepared_data on the others: preparing rewrites the shard folder.
PreparedData prepare_data(const DatasetConfig& d, const PrepareOptions& opt = {});

// The shards prepare_data left (for ranks other than 0); validates every shard and token.
PreparedData open_prepared_data(const DatasetConfig& d);

// Loader options (seq_len, split, seed, loss mask) for one rank.
LoaderOptions loader_options(const DatasetConfig& d, int rank = 0, int world = 1);
std::unique_ptr<BatchLoader> make_loader(const PreparedData& data, const LoaderOptions& opt, Split split);

}  // namespace attnlab::data
