// The data section of an experiment config end to end: YAML -> the data pipeline's own config
// (train::dataset_config) -> shards -> loaders, on small files and the byte tokenizer (no asset
// cache needed).
#include <gtest/gtest.h>

#include "core/config/experiment.h"
#include "data/data_test_util.h"
#include "data/dataset.h"
#include "train/data_config.h"

namespace attnlab::test {
namespace {

std::string yaml(const ScratchDir& dir, const std::string& task, const std::string& data_lines) {
  return "task: " + task + "\nrun:\n  name: t\n  seed: 9\n  out_dir: " + dir.path +
         "/runs\nmodel:\n  from: init:gpt2\ntrain:\n  steps: 10\ndata:\n  tokenizer: " + dir.path + "/tok\n" + data_lines;
}

TEST(DataConfig, WikitextPretrainingThroughTheConfig) {
  ScratchDir dir;
  make_byte_tokenizer(dir / "tok");
  write_text(dir / "wiki.raw", " = A = \n \n x 1 @,@ 000 y \n \n = B = \n \n z 2 @-@ 3 \n");
  auto cfg = config::load_experiment_text(
      yaml(dir, "pretrain", "  format: wikitext\n  path: " + dir.path + "/wiki.raw\n  seq_len: 4\n  val_fraction: 0\n"
                            "  wikitext_detokenize: true\n"),
      "x.yaml");
  EXPECT_EQ(train::shard_dir_of(cfg), dir / "runs/t/shards");
  const data::DatasetConfig dc = train::dataset_config(cfg);
  EXPECT_EQ(dc.shard_dir, dir / "runs/t/shards");
  EXPECT_FALSE(dc.sft.has_value());
  data::PreparedData d = data::prepare_data(dc);
  EXPECT_FALSE(d.sft);
  ASSERT_EQ(d.shards->doc_count(), 2u);
  auto [shard, local] = d.shards->locate(0);
  std::string doc0;
  for (int32_t t : shard->doc_tokens(local)) doc0.push_back(char(t));
  EXPECT_EQ(doc0, " = A = \n \n x 1,000 y \n");
  data::LoaderOptions lo = data::loader_options(dc);
  EXPECT_EQ(lo.seed, 9u);
  EXPECT_EQ(lo.seq_len, 4);
  auto loader = data::make_loader(d, lo, data::Split::train);
  data::Batch b;
  ASSERT_TRUE(loader->next(b, 2));
  EXPECT_EQ(b.cols, 4);
  // doc_unit: line makes one document per non-blank line.
  auto by_line = config::load_experiment_text(
      yaml(dir, "pretrain", "  format: wikitext\n  path: " + dir.path + "/wiki.raw\n  seq_len: 4\n  doc_unit: line\n"),
      "x.yaml");
  EXPECT_EQ(data::prepare_data(train::dataset_config(by_line)).shards->doc_count(), 4u);
}

TEST(DataConfig, SftRecordsThroughTheConfigWithRenamedFields) {
  ScratchDir dir;
  make_byte_tokenizer(dir / "tok");
  write_text(dir / "gsm.jsonl", "{\"problem\": \"1+1?\", \"answer\": \"1+1 = <<1+1=2>>2\\n#### 2\"}\n"
                                "{\"problem\": \"2+2?\", \"answer\": \"#### 4\"}\n");
  auto cfg = config::load_experiment_text(
      yaml(dir, "sft", "  format: jsonl\n  path: " + dir.path + "/gsm.jsonl\n  seq_len: 64\n  sft_format: gsm8k\n"
                       "  fields: {question: problem}\n  loss_on: assistant\n  val_fraction: 0\n"),
      "x.yaml");
  const data::DatasetConfig dc = train::dataset_config(cfg);
  ASSERT_TRUE(dc.sft.has_value());
  EXPECT_EQ(dc.sft->fields.at("question"), "problem");
  data::PreparedData d = data::prepare_data(dc);
  EXPECT_TRUE(d.sft);
  EXPECT_EQ(d.prepared.doc_count, 2u);
  data::LoaderOptions lo = data::loader_options(dc);
  EXPECT_TRUE(lo.loss_on_targets_only);
  lo.shuffle = false;
  auto loader = data::make_loader(d, lo, data::Split::train);
  data::Batch b;
  ASSERT_TRUE(loader->next(b, 2));
  std::string second;  // what row 1's targets spell: its answer and EOS (256)
  for (int64_t t = 0; t < b.cols; ++t)
    if (int32_t y = b.targets[size_t(b.cols + t)]; y != data::kIgnoreTarget) second.push_back(y == 256 ? '$' : char(y));
  EXPECT_EQ(second, "#### 4$");
  EXPECT_TRUE(data::prepare_data(dc).prepared.reused);
  // Ranks other than 0 open what rank 0 prepared.
  EXPECT_EQ(data::open_prepared_data(dc).prepared.doc_count, 2u);
}

}  // namespace
}  // namespace attnlab::test
