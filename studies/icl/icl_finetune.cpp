// The FT phase of the ICL study: KV-only fine-tuning by the experiment's trainer (METHODS §2.6; icl_run.h).
#include <filesystem>
#include <fstream>

#include "core/memory.h"
#include "core/ops/cross_entropy_math.h"
#include "core/error.h"
#include "studies/icl/icl_run.h"
#include "train/trainer.h"

namespace attnlab::icl {

void write_demonstrations(const std::string& path, SstTask task, std::span<const SstRecord> demos) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  for (const SstRecord& r : demos) {
    nlohmann::ordered_json j;
    if (task == SstTask::sst2) {
      j["sentence"] = r.text;
      j["label"] = r.label;
      j["idx"] = r.idx;
    } else {
      j["text"] = r.text;
      j["label"] = r.label;
      j["label_text"] = label_word(task, r.label);
    }
    f << j.dump() << "\n";
  }
  INPUT_CHECK(f.good(), "icl: cannot write '", path, "'; choose a writable --out folder");
}

std::vector<std::string> finetune_overrides(const IclConfig& c, const std::string& demos_file) {
  const std::string ft = (std::filesystem::path(c.out) / "ft").string();
  std::vector<std::string> o = {"data.path=" + demos_file, "data.format=jsonl",      "data.sft_format=sst",
                                "data.val_fraction=0.0",   "data.shard_dir=" + ft + "/shards",
                                "run.out_dir=" + ft,       "eval.every_steps=0"};
  return o;
}

std::unique_ptr<train::Trainer> make_finetuner(const std::string& file, const std::vector<std::string>& overrides,
                                               const IclConfig& c, std::span<const SstRecord> demos,
                                               std::FILE* console) {
  const std::string demos_file = (std::filesystem::path(c.out) / "ft" / "demos.jsonl").string();
  write_demonstrations(demos_file, c.dataset, demos);
  std::vector<std::string> all = overrides;
  for (const std::string& s : finetune_overrides(c, demos_file)) all.push_back(s);
  const config::ExperimentConfig cfg = load_icl_experiment(file, all);
  // A fresh run: the trainer would resume from a run folder left by an earlier run.
  std::filesystem::remove_all(std::filesystem::path(cfg.run.out_dir) / cfg.run.name);
  train::TrainerOptions opt;
  opt.console = console;
  return std::make_unique<train::Trainer>(cfg, opt);
}

std::vector<double> sgd_kv_finetune(Model& m, Ctx& ctx, const data::Tokenizer& tok, SstTask task,
                                    std::span<const SstRecord> demos, double lr) {
  m.params().set_trainable(ctx, {"*.k_proj.*", "*.v_proj.*"});
  m.set_training(true);
  std::vector<double> losses;
  for (const SstRecord& r : demos) {
    const std::vector<int32_t> ids = tok.encode(ft_record_text(task, r));
    const int64_t prompt = int64_t(tok.encode(query_prompt("", r.text)).size());
    const int64_t T = int64_t(ids.size());
    INPUT_CHECK(T > prompt, "icl --ft-paper: the record of idx ", r.idx, " has no label tokens after its prompt");
    std::vector<double> targets(static_cast<size_t>(T), double(kIgnoreIndex));
    for (int64_t t = prompt - 1; t + 1 < T; ++t) targets[size_t(t)] = double(ids[size_t(t + 1)]);
    Buffer ids_dev(m.device(), DType::i32, {1, T}), targets_dev(m.device(), DType::i32, {1, T});
    from_host_f64(ctx, ids_dev.t(), std::vector<double>(ids.begin(), ids.end()));
    from_host_f64(ctx, targets_dev.t(), targets);
    m.plan(ctx, 1, T);
    m.params().zero_grads(ctx);
    const Tensor loss = m.forward(ctx, ids_dev, targets_dev, double(T - prompt));
    losses.push_back(to_host_f64(ctx, loss)[0]);
    m.backward(ctx);
    for (Param& p : m.params()) {
      if (!p.trainable) continue;
      std::vector<double> w = to_host_f64(ctx, p.value);
      const std::vector<double> g = to_host_f64(ctx, p.grad);
      for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * g[i];
      from_host_f64(ctx, p.value, w);
    }
  }
  m.set_training(false);
  return losses;
}

}  // namespace attnlab::icl
