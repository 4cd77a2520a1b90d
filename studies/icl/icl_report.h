#pragma once
// The results of one ICL-study run, the metrics computed from its captures, and its outputs
// (METHODS §2.11): OUT/icl_<dataset>_seed<S>.json (keys Rec2FTP, Rec2FT_seed, SimAOU, RandomSimAOU,
// SimAM, ZSL_SimAM, kendall, random_kendall, the accuracies, per-layer arrays under "per_layer"),
// OUT/icl_<dataset>_seed<S>_captures.safetensors (every captured vector, so each metric can be
// recomputed outside attnlab) and the figures (tools/plot_icl.py).
#include <optional>
#include <string>
#include <vector>

#include "studies/icl/icl_run.h"

namespace attnlab::icl {

struct IclResults {
  SstTask dataset = SstTask::sst2;
  IclConfig config;
  std::string model;
  int64_t layers = 0, n_eval = 0;
  std::vector<int64_t> demo_indices;
  std::optional<Prediction> zsl, icl, ft;
  // Captures (one per validation row) and the Kendall inputs.
  std::vector<PromptCapture> zsl_cap, icl_cap, ft_cap;
  int64_t context_tokens = 0, kendall_Ld = 0;
  std::vector<std::vector<float>> qd;                  // [L][Ld*W]
  std::vector<int64_t> paper_icl_counts, paper_demo_tokens;
  std::vector<std::vector<std::vector<float>>> paper_train_q;  // [demo][L][n_j*W]
  // FT.
  int64_t ft_steps = 0, ft_changed = 0;
  double ft_first_loss = 0, ft_last_loss = 0;
  std::vector<std::string> ft_frozen_changed;
  // Metrics.
  std::optional<Rec2Ft> rec;
  std::optional<SimAouResult> simaou;
  std::optional<SimAmResult> simam;
  std::optional<KendallSummary> kendall;
  std::vector<double> random_kendall_per_layer;
  double random_kendall = 0;
  nlohmann::ordered_json kendall_paper;  // PAPER variant's per-layer arrays and means
  PhaseTimes times;
};

// Compares every parameter of `base` and `ft` bit for bit: returns how many k_proj/v_proj tensors
// changed and lists every other tensor that changed in `frozen_changed` (should stay empty).
int64_t kv_only_check(Ctx& base_ctx, const Model& base, Ctx& ft_ctx, const Model& ft,
                      std::vector<std::string>& frozen_changed);

void compute_metrics(IclResults& r, const RunParts& parts);

// Writes the JSON, the safetensors and (unless config.no_plots) the figures; returns the JSON.
nlohmann::ordered_json write_icl_outputs(const IclResults& r, const RunParts& parts, std::FILE* console);
// Writes `j` again over the run's JSON file (after the last phase times are known).
void rewrite_json(const IclResults& r, const nlohmann::ordered_json& j);
// OUT/icl_<dataset>_seed<S> (no extension).
std::string output_stem(const IclConfig& c);

}  // namespace attnlab::icl
