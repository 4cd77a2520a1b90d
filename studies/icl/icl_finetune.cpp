// The FT phase of the ICL study: KV-only fine-tuning by the experiment's trainer (METHODS §2.6; icl_run.h).
#include <filesystem>
#include <fstream>

#include "core/config/value.h"
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
  if (c.ft_paper) {
    for (const char* s : {"optim.name=sgd", "optim.momentum=0.0", "optim.weight_decay=0.0", "optim.grad_clip=0.0",
                          "schedule.kind=constant", "schedule.warmup_steps=0", "data.loss_on=assistant"})
      o.push_back(s);
    o.push_back("optim.lr=" + config::format_float(c.ft_paper_lr));
  }
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

}  // namespace attnlab::icl
