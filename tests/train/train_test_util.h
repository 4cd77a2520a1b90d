#pragma once
// Helpers for the trainer tests: experiment configs of tiny models, synthetic token shards with a
// learnable structure (no tokenizer needed), tiny HF folders, and parameter snapshots.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config/experiment.h"
#include "core/memory.h"
#include "core/models/weights.h"
#include "train/trainer.h"
#include "data/data_test_util.h"
#include "data/dataset.h"
#include "support/testing.h"

namespace attnlab::test {

// Documents over tokens 0..V-2 (V-1 is EOS) in which every token is a fixed function of the one
// before (t' = (5t + 3) mod (V-1)) from a random start, so a model can drive the loss towards 0.
inline std::vector<std::vector<int32_t>> patterned_docs(int n, int32_t V, uint64_t seed) {
  std::vector<std::vector<int32_t>> docs;
  const std::vector<int32_t> starts = rand_ints(size_t(n), 0, V - 1, seed);
  const std::vector<int32_t> lengths = rand_ints(size_t(n), 20, 60, seed + 1);
  for (int d = 0; d < n; ++d) {
    std::vector<int32_t> doc{starts[size_t(d)]};
    while (int32_t(doc.size()) < lengths[size_t(d)]) doc.push_back((5 * doc.back() + 3) % (V - 1));
    docs.push_back(doc);
  }
  return docs;
}

// Prepared pretraining data over hand-made shards in `dir` (what prepare_data would return).
inline std::shared_ptr<const data::PreparedData> synthetic_data(const std::string& dir, int docs, int32_t V,
                                                                uint64_t seed = 7) {
  auto p = std::make_shared<data::PreparedData>();
  p->sft = false;
  p->shard_dir = dir;
  p->shards = make_shards(dir, patterned_docs(docs, V, seed), uint32_t(V), V - 1, 40);
  p->prepared.dir = dir;
  p->prepared.reused = true;
  return p;
}

// SFT records (token ids 0..V-2, EOS V-1) of 6..max_len tokens whose target mask starts after a
// prompt of random length, so micro-batches carry different numbers of target tokens.
inline std::shared_ptr<const data::PreparedData> synthetic_sft_data(const std::string& dir, int records, int32_t V,
                                                                    int max_len, uint64_t seed = 9) {
  std::vector<std::vector<int32_t>> docs;
  std::vector<std::vector<uint8_t>> masks;
  const std::vector<int32_t> lengths = rand_ints(size_t(records), 6, max_len + 1, seed);
  const std::vector<int32_t> prompt_fraction = rand_ints(size_t(records), 1, 9, seed + 1);
  for (int r = 0; r < records; ++r) {
    const int32_t len = lengths[size_t(r)];
    std::vector<int32_t> doc = rand_ints(size_t(len), 0, V - 1, seed + 100 + uint64_t(r));
    const int32_t prompt = std::max(1, len * prompt_fraction[size_t(r)] / 10);
    std::vector<uint8_t> mask(size_t(len), 1);
    std::fill(mask.begin(), mask.begin() + prompt, uint8_t(0));
    docs.push_back(doc);
    masks.push_back(mask);
  }
  auto p = std::make_shared<data::PreparedData>();
  p->sft = true;
  p->shard_dir = dir;
  p->shards = make_shards(dir, docs, uint32_t(V), V - 1, 1000, masks);
  p->prepared.dir = dir;
  p->prepared.reused = true;
  return p;
}

// A pretraining experiment on a tiny GPT-2 (vocab 32, 2 layers of width 32, T = 16) writing into
// out_dir/name, with key.path=value overrides on top.
// `model_yaml` replaces the model section (e.g. "model: {from: /path/to/hf-folder}\n").
inline const char* kTinyGpt2 =
    "model:\n"
    "  from: init:gpt2\n"
    "  arch: {n_layer: 2, n_embd: 32, n_head: 2, n_positions: 32, vocab_size: 32, embd_pdrop: 0.0, resid_pdrop: 0.0, attn_pdrop: 0.0}\n";

// The model section of a tiny paper-preset from-scratch decoder (METHODS §3; variant standard or
// differential): D = 8, 2 layers, 4 heads of 2, over a 258-token vocabulary, so a byte
// tokenizer's ids (needle contexts) and the synthetic shards' ids (< 32) both fit.
inline std::string tiny_decoder_yaml(const char* variant) {
  return std::string(
             "model:\n"
             "  from: init:decoder_paper\n"
             "  attention: {variant: ") +
         variant +
         "}\n"
         "  arch: {hidden_size: 8, num_hidden_layers: 2, num_attention_heads: 4, head_dim: 2, intermediate_size: 16,\n"
         "         vocab_size: 258, pad_token_id: 256, max_position_embeddings: 256, dropout: 0.1}\n";
}

inline config::ExperimentConfig tiny_experiment(const std::string& out_dir, const std::string& name,
                                                std::vector<std::string> overrides = {},
                                                const std::string& model_yaml = kTinyGpt2) {
  const std::string yaml =
      "task: pretrain\n"
      "run: {name: " + name + ", out_dir: " + out_dir + ", seed: 11, device: cpu}\n" + model_yaml +
      "data: {path: unused-synthetic, seq_len: 16, val_fraction: 0.1}\n"
      "train: {micro_batch: 4, grad_accum: 1, steps: 6}\n"
      "optim: {lr: 3.0e-3, weight_decay: 0.1}\n"
      "schedule: {kind: cosine, warmup_steps: 1}\n"
      "eval: {every_steps: 0}\n"
      "checkpoint: {every_steps: 0, keep_last: 0}\n"
      "log: {every_steps: 1, progress: false}\n";
  return config::load_experiment_text(yaml, name + ".yaml", overrides);
}

// The overrides that turn tiny_experiment into SFT on synthetic_sft_data (loss on targets only).
inline const std::vector<std::string> kSftOverrides = {"task=sft", "data.sft_format=gsm8k", "data.format=jsonl",
                                                       "data.loss_on=assistant"};

inline train::TrainerOptions quiet_options(std::shared_ptr<const data::PreparedData> data) {
  train::TrainerOptions o;
  o.data = std::move(data);
  o.console = nullptr;
  return o;
}

// name → values of every parameter.
inline std::map<std::string, std::vector<double>> param_values(Ctx& ctx, const TrainableModel& m) {
  std::map<std::string, std::vector<double>> v;
  for (const Param& p : m.params()) v[p.name] = to_host_f64(ctx, p.value);
  return v;
}

// A tiny random Qwen3 (or Qwen2) checkpoint folder: D=32, 2 layers, 4/2 heads of 8, vocab V.
inline void write_tiny_qwen(const std::string& folder, ModelArch arch, int64_t V, int64_t D = 32, int64_t I = 64) {
  ModelConfig c = model_config_defaults(arch);
  c.hidden_size = D;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = D / 4;
  c.intermediate_size = I;
  c.vocab_size = V;
  c.max_position_embeddings = 256;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  c.source = "tiny qwen for trainer tests";
  Ctx& ctx = cpu_ctx();
  Model m(c, {Device::cpu, DType::f32, false}, ctx);
  init_weights(m, ctx, 5);
  save_model(m, ctx, folder);
}

}  // namespace attnlab::test
