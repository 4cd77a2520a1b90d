#include "train/data_config.h"

#include <filesystem>

#include "core/error.h"

namespace attnlab::train {

namespace {

data::CorpusFormat format_of(config::DataFormat f) {
  switch (f) {
    case config::DataFormat::text: return data::CorpusFormat::text;
    case config::DataFormat::wikitext: return data::CorpusFormat::wikitext;
    case config::DataFormat::jsonl: return data::CorpusFormat::jsonl;
    case config::DataFormat::tsv: return data::CorpusFormat::tsv;
  }
  return data::CorpusFormat::text;
}

data::DocumentUnit unit_of(config::DocUnit u) {
  switch (u) {
    case config::DocUnit::automatic: return data::DocumentUnit::automatic;
    case config::DocUnit::file: return data::DocumentUnit::file;
    case config::DocUnit::article: return data::DocumentUnit::article;
    case config::DocUnit::paragraph: return data::DocumentUnit::paragraph;
    case config::DocUnit::line: return data::DocumentUnit::line;
  }
  return data::DocumentUnit::automatic;
}

data::SftFormat sft_format_of(config::SftFormat f) {
  switch (f) {
    case config::SftFormat::openr1: return data::SftFormat::openr1;
    case config::SftFormat::openmath: return data::SftFormat::openmath;
    case config::SftFormat::gsm8k: return data::SftFormat::gsm8k;
    case config::SftFormat::sst: return data::SftFormat::sst;
  }
  return data::SftFormat::gsm8k;
}

}  // namespace

data::CorpusOptions corpus_options(const config::DataConfig& d) {
  data::CorpusOptions o;
  o.format = format_of(d.format);
  o.path = d.path;
  o.field = d.text_field;
  o.tsv_header = d.tsv_header;
  o.unit = unit_of(d.doc_unit);
  o.wikitext_detokenize = d.wikitext_detokenize;
  return o;
}

data::SftOptions sft_options(const config::DataConfig& d) {
  INPUT_CHECK(d.sft_format.has_value(), "data.sft_format is not set; SFT records need a schema");
  data::SftOptions o;
  o.format = sft_format_of(*d.sft_format);
  for (auto& [schema, name] : d.fields) o.fields[schema] = name;
  return o;
}

std::string shard_dir_of(const config::ExperimentConfig& cfg) {
  if (cfg.data.shard_dir) return *cfg.data.shard_dir;
  return (std::filesystem::path(cfg.run.out_dir) / cfg.run.name / "shards").string();
}

data::DatasetConfig dataset_config(const config::ExperimentConfig& cfg) {
  data::DatasetConfig d;
  d.source = corpus_options(cfg.data);
  if (cfg.data.sft_format) d.sft = sft_options(cfg.data);
  d.tokenizer = cfg.data.tokenizer;
  d.shard_dir = shard_dir_of(cfg);
  d.seq_len = cfg.data.seq_len;
  d.val_fraction = cfg.data.val_fraction;
  d.seed = uint64_t(cfg.run.seed);
  d.loss_on_targets_only = cfg.data.loss_on == config::LossOn::assistant;
  return d;
}

}  // namespace attnlab::train
