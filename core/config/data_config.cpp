#include "core/config/data_config.h"

namespace attnlab::config {

bool DataConfig::is_named_tokenizer(const std::string& s) { return s == "gpt2" || s == "qwen2.5" || s == "qwen3"; }

void declare_fields(FieldBinder<DataConfig>& f) {
  f.enum_field("format", &DataConfig::format,
               {{"text", DataFormat::text}, {"wikitext", DataFormat::wikitext}, {"jsonl", DataFormat::jsonl},
                {"tsv", DataFormat::tsv}},
               "how `path` is read: plain text files, wikitext-raw, JSON lines or TSV")
      .def("text");
  f.field("path", &DataConfig::path, "the corpus or record file, or a folder of them").required().as_path();
  f.field("tokenizer", &DataConfig::tokenizer,
          "gpt2, qwen2.5, qwen3 (from the asset cache), or a tokenizer.json / vocab folder path")
      .def("gpt2");
  f.field("seq_len", &DataConfig::seq_len, "tokens per training sequence (T)").def(1024).range_closed(2, 1 << 20);
  f.field("fields", &DataConfig::fields,
          "SFT record field renames, schema name -> name in your files (e.g. question: problem)")
      .def(StringMap{});
  f.enum_field("sft_format", &DataConfig::sft_format,
               {{"openr1", SftFormat::openr1}, {"openmath", SftFormat::openmath}, {"gsm8k", SftFormat::gsm8k},
                {"sst", SftFormat::sst}},
               "SFT record schema: openr1 (OpenR1-Math), openmath (OpenMathInstruct-2), gsm8k, sst");
  f.enum_field("loss_on", &DataConfig::loss_on, {{"all", LossOn::all}, {"assistant", LossOn::assistant}},
               "which tokens carry loss: all, or assistant (target) tokens only (SFT)")
      .def("all");
  f.field("val_fraction", &DataConfig::val_fraction, "fraction of documents/records held out for validation")
      .def(0.01)
      .range_closed_open(0, 1);
  f.field("shard_dir", &DataConfig::shard_dir, "where token shards are cached; unset: <out_dir>/<name>/shards")
      .as_path();
  f.field("text_field", &DataConfig::text_field,
          "pretraining text of a jsonl record (key) or tsv row (column name, or 0-based index)")
      .def("text");
  f.enum_field("doc_unit", &DataConfig::doc_unit,
               {{"auto", DocUnit::automatic}, {"file", DocUnit::file}, {"article", DocUnit::article},
                {"paragraph", DocUnit::paragraph}, {"line", DocUnit::line}},
               "one pretraining document per: auto (text: file, wikitext: article, jsonl/tsv: row), file, "
               "article, paragraph or line")
      .def("auto");
  f.field("tsv_header", &DataConfig::tsv_header, "the first row of a tsv file names its columns").def(true);
  f.field("wikitext_detokenize", &DataConfig::wikitext_detokenize,
          "wikitext: turn \" @-@ \", \" @,@ \", \" @.@ \" back into \"-\", \",\", \".\"")
      .def(false);
}

}  // namespace attnlab::config
