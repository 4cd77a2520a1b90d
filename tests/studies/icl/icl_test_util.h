#pragma once
// A tiny Qwen3-shaped stand-in for the ICL study's tests: a random 2-layer Qwen3 with Qwen's
// vocabulary (the qwen3 tokenizer from the asset cache), synthetic SST-2 splits in GLUE's layout
// and an experiment file like experiments/icl/sst2.yaml pointing at them.
#include <fstream>
#include <string>
#include <vector>

#include "data/synth.h"
#include "train/train_test_util.h"

namespace attnlab::test {

struct IclStandIn {
  std::string dir, model, train, eval, yaml;
};

inline void write_synth_sst2(const std::string& path, uint64_t n, uint64_t seed) {
  data::SynthOptions o;
  o.kind = data::SynthKind::sst2;
  o.n = n;
  o.seed = seed;
  std::ofstream f(path, std::ios::binary);
  data::write_synth_sst(f, o, data::load_sentiment_lexicon());
}

// `analysis` lines (two-space indented) go under the analysis section after the fixed ones.
inline IclStandIn make_icl_standin(const std::string& dir, int64_t k, int64_t n_eval, const std::string& analysis = "") {
  IclStandIn s;
  s.dir = dir;
  s.model = dir + "/qwen3-tiny";
  s.train = dir + "/sst2-train.tsv";
  s.eval = dir + "/sst2-validation.tsv";
  s.yaml = dir + "/icl.yaml";
  write_tiny_qwen(s.model, ModelArch::qwen3, 151936);
  write_synth_sst2(s.train, 24, 1);
  write_synth_sst2(s.eval, uint64_t(n_eval), 2);
  std::ofstream y(s.yaml);
  y << "task: kv_only\n"
       "run: {name: ft, out_dir: " << dir << "/runs, seed: 42, device: cpu, dtype: f32}\n"
       "model: {from: " << s.model << "}\n"
       "data: {format: jsonl, path: " << dir << "/unused.jsonl, sft_format: sst, tokenizer: qwen3, seq_len: 64, "
       "loss_on: all, val_fraction: 0.0}\n"
       "train: {micro_batch: 1, grad_accum: 1, epochs: 1}\n"
       "optim: {lr: 1.0e-2, weight_decay: 0.0, grad_clip: 1.0}\n"
       "schedule: {kind: linear, warmup_steps: 0, min_lr_ratio: 0.0}\n"
       "eval: {every_steps: 0}\n"
       "checkpoint: {every_steps: 0, keep_last: 0}\n"
       "log: {every_steps: 1, progress: false}\n"
       "analysis:\n"
       "  study: icl\n"
       "  dataset: sst2\n"
       "  train_file: " << s.train << "\n"
       "  eval_file: " << s.eval << "\n"
       "  k: " << k << "\n"
       "  seed: 0\n"
       "  seed_max: 3\n"
       "  batch: 3\n"
       "  out: " << dir << "/out\n"
       "  no_plots: true\n" << analysis;
  return s;
}

}  // namespace attnlab::test
