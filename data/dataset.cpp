#include "data/dataset.h"

#include "data/assets.h"
#include "data/input_check.h"

namespace attnlab::data {

CorpusOptions corpus_source(const DatasetConfig& d) {
  CorpusOptions o = d.source;
  o.path = resolve_data_path(d.source.path);
  return o;
}

PreparedData prepare_data(const DatasetConfig& d, const PrepareOptions& opt) {
  PreparedData p;
  p.sft = d.sft.has_value();
  p.shard_dir = d.shard_dir;
  const Tokenizer tokenizer = Tokenizer::load(d.tokenizer);
  const CorpusOptions source = corpus_source(d);
  p.prepared = p.sft ? prepare_sft_shards(source, *d.sft, tokenizer, d.tokenizer, p.shard_dir, opt)
                     : prepare_shards(source, tokenizer, p.shard_dir, opt);
  // Every token is checked against the vocabulary once more here (one pass over the mapped
  // files), so a damaged shard fails now rather than as an out-of-range embedding row.
  p.shards = std::make_shared<const ShardSet>(ShardSet::open(p.shard_dir, /*check_tokens=*/true));
  return p;
}

PreparedData open_prepared_data(const DatasetConfig& d) {
  PreparedData p;
  p.sft = d.sft.has_value();
  p.shard_dir = d.shard_dir;
  p.shards = std::make_shared<const ShardSet>(ShardSet::open(p.shard_dir, /*check_tokens=*/true));
  INPUT_CHECK(p.shards->info().has_mask == p.sft, p.shard_dir, ": these shards hold ",
              p.shards->info().has_mask ? "SFT records" : "corpus documents", " but the config asks for ",
              p.sft ? "SFT records" : "corpus documents", "; ", shard_fix_hint(p.shard_dir + "/x"));
  p.prepared.dir = p.shard_dir;
  p.prepared.reused = true;
  p.prepared.shard_count = uint32_t(p.shards->shards().size());
  p.prepared.doc_count = p.shards->doc_count();
  p.prepared.token_count = p.shards->token_count();
  p.prepared.hash = p.shards->info().hash;
  return p;
}

LoaderOptions loader_options(const DatasetConfig& d, int rank, int world) {
  LoaderOptions o;
  o.seq_len = d.seq_len;
  o.val_fraction = d.val_fraction;
  o.seed = d.seed;
  o.rank = rank;
  o.world = world;
  o.loss_on_targets_only = d.loss_on_targets_only;
  return o;
}

std::unique_ptr<BatchLoader> make_loader(const PreparedData& data, const LoaderOptions& opt, Split split) {
  if (data.sft) return std::make_unique<SftLoader>(data.shards, opt, split);
  return std::make_unique<PretrainLoader>(data.shards, opt, split);
}

}  // namespace attnlab::data
