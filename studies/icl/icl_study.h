#pragma once
// The ICL-vs-KV-only-fine-tuning study of seed 001 (METHODS §2) on the study interface
// (studies/study.h). One experiment file drives it (experiments/icl/sst2.yaml, sst5.yaml): the
// kv_only training sections are the fine-tuning (FT) of METHODS §2.6 and `analysis: {study: icl}`
// holds the fields below; `attnlab icl <command> FILE` runs a part or the whole protocol with every
// field also an option (--k, --seed, --label-scoring, ...) and key=value overrides of any section.
//
//   analysis:
//     study: icl
//     dataset: sst2
//     train_file: runs/inputs/icl/sst2-train.tsv
//     eval_file: runs/inputs/icl/sst2-validation.tsv
//     k: 32
//     seed: 0
//
// The commands (tools/attnlab/cmd_icl.cpp) call the pipeline of studies/icl/icl_run.h.
#include <cstdint>
#include <memory>
#include <string>

#include "core/config/experiment.h"
#include "studies/icl/metrics.h"
#include "studies/icl/sst.h"
#include "studies/study.h"

namespace attnlab::icl {

inline constexpr const char* kIclStudy = "icl";

enum class FtRecipe : uint8_t { original, paper };        // HF-Trainer AdamW / PAPER SGD, label-token loss
enum class SimAmAlign : uint8_t { original, paper };      // ICL row's last Lq scores / from the context length
enum class KendallDemoPass : uint8_t { separate, icl };   // ORIGINAL demo-only pass / CHOICE the ICL pass

struct IclConfig {
  SstTask dataset = SstTask::sst2;
  std::string train_file, eval_file;
  int64_t eval_limit = 0;  // 0: the whole validation file
  int64_t k = 32;
  int64_t seed = 0;
  int64_t seed_max = 100;
  int64_t batch = 16;
  int64_t select_batch = 32;
  bool label_scoring = false;
  bool ft_paper = false;
  double ft_paper_lr = 1e-3;
  SimAouSource simaou_source = SimAouSource::hidden;
  bool include_embedding_layer = false;
  bool simaou_paper = false;  // eps 1e-20 and U[0,1) random vectors
  SimAmAlign simam_align = SimAmAlign::original;
  bool kendall_paper = false;
  KendallDemoPass kendall_demo_pass = KendallDemoPass::separate;
  int64_t random_seed = 0;
  std::string out;
  bool no_plots = false;
  std::string plot_script;
};

// The study's field table (prefix "analysis"); the CLI makes one option per field from it.
studies::FieldTable icl_fields();
void register_icl_study();

// The experiment file with the overrides, its analysis section checked to be the icl study's.
config::ExperimentConfig load_icl_experiment(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace attnlab::icl

namespace attnlab::studies {
std::shared_ptr<const Study> icl_study();
}  // namespace attnlab::studies
