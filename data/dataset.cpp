#include "data/dataset.h"

#include "data/assets.h"

#include <filesystem>

#include "data/input_check.h"

namespace attnlab::data {

namespace {

CorpusFormat format_of(config::DataFormat f) {
  switch (f) {
    case config::DataFormat::text: return CorpusFormat::text;
    case config::DataFormat::wikitext: return CorpusFormat::wikitext;
    case config::DataFormat::jsonl: return CorpusFormat::jsonl;
    case config::DataFormat::tsv: return CorpusFormat::tsv;
  }
  return CorpusFormat::text;
}

DocumentUnit unit_of(config::DocUnit u) {
  switch (u) {
    case config::DocUnit::automatic: return DocumentUnit::automatic;
    case config::DocUnit::file: return DocumentUnit::file;
    case config::DocUnit::article: return DocumentUnit::article;
    case config::DocUnit::paragraph: return DocumentUnit::paragraph;
    case config::DocUnit::line: return DocumentUnit::line;
  }
  return DocumentUnit::automatic;
}

SftFormat sft_format_of(config::SftFormat f) {
  switch (f) {
    case config::SftFormat::openr1: return SftFormat::openr1;
    case config::SftFormat::openmath: return SftFormat::openmath;
    case config::SftFormat::gsm8k: return SftFormat::gsm8k;
    case config::SftFormat::sst: return SftFormat::sst;
  }
  return SftFormat::gsm8k;
}

}  // namespace

CorpusOptions corpus_options(const config::DataConfig& d) {
  CorpusOptions o;
  o.format = format_of(d.format);
  o.path = resolve_data_path(d.path);
  o.field = d.text_field;
  o.tsv_header = d.tsv_header;
  o.unit = unit_of(d.doc_unit);
  o.wikitext_detokenize = d.wikitext_detokenize;
  return o;
}

SftOptions sft_options(const config::DataConfig& d) {
  INPUT_CHECK(d.sft_format.has_value(), "data.sft_format is not set; SFT records need a schema");
  SftOptions o;
  o.format = sft_format_of(*d.sft_format);
  for (auto& [schema, name] : d.fields) o.fields[schema] = name;
  return o;
}

std::string shard_dir_of(const config::ExperimentConfig& cfg) {
  if (cfg.data.shard_dir) return *cfg.data.shard_dir;
  return (std::filesystem::path(cfg.run.out_dir) / cfg.run.name / "shards").string();
}

PreparedData prepare_data(const config::ExperimentConfig& cfg, const PrepareOptions& opt) {
  PreparedData p;
  p.sft = cfg.data.sft_format.has_value();
  p.shard_dir = shard_dir_of(cfg);
  const Tokenizer tokenizer = Tokenizer::load(cfg.data.tokenizer);
  const CorpusOptions source = corpus_options(cfg.data);
  p.prepared = p.sft ? prepare_sft_shards(source, sft_options(cfg.data), tokenizer, cfg.data.tokenizer, p.shard_dir, opt)
                     : prepare_shards(source, tokenizer, p.shard_dir, opt);
  // Every token is checked against the vocabulary once more here (one pass over the mapped
  // files), so a damaged shard fails now rather than as an out-of-range embedding row.
  p.shards = std::make_shared<const ShardSet>(ShardSet::open(p.shard_dir, /*check_tokens=*/true));
  return p;
}

PreparedData open_prepared_data(const config::ExperimentConfig& cfg) {
  PreparedData p;
  p.sft = cfg.data.sft_format.has_value();
  p.shard_dir = shard_dir_of(cfg);
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

LoaderOptions loader_options(const config::ExperimentConfig& cfg, int rank, int world) {
  LoaderOptions o;
  o.seq_len = cfg.data.seq_len;
  o.val_fraction = cfg.data.val_fraction;
  o.seed = uint64_t(cfg.run.seed);
  o.rank = rank;
  o.world = world;
  o.loss_on_targets_only = cfg.data.loss_on == config::LossOn::assistant;
  return o;
}

std::unique_ptr<BatchLoader> make_loader(const PreparedData& data, const LoaderOptions& opt, Split split) {
  if (data.sft) return std::make_unique<SftLoader>(data.shards, opt, split);
  return std::make_unique<PretrainLoader>(data.shards, opt, split);
}

}  // namespace attnlab::data
