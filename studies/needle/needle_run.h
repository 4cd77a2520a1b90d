#pragma once
// The answer-to-noise analysis of a trained model over generated needle contexts (METHODS §3.6,
// §3.7), and its JSON / CSV output. Any model attnlab builds: the from-scratch decoders and the
// HF-config models (GPT-2, Qwen2/2.5, Qwen3, any attention variant); the attention rows come from
// the probes (core/models/attention_rows.h).
//
// Default: eval-mode causal forward per context; the chosen layer's attention (last unless
// `layer` ≥ 0), averaged over heads (DIFF: A1 − λA2), rows = the question's tokens (or only the
// last token); masses and ANR per context (needle.h); mean/std per depth.
// seed_compat (--seed-compat-analysis, ORIGINAL, for reference only; from-scratch decoders only): the last layer's head-0 map
// computed from the raw token embeddings (no positions, no norms), no causal mask, softmax (DIFF
// A1 − λ_0 A2), min-max normalised; span length = the needle's token count, span start =
// floor(depth·n_words) used as a token index; answer/noise means over the whole map.
#include <string>
#include <vector>

#include "studies/needle/needle.h"
#include "core/models/scratch_decoder.h"
#include "core/models/trainable_model.h"

namespace attnlab::analysis {

struct NeedleRunOptions {
  NeedleOptions contexts;
  int64_t layer = -1;        // −1: the last layer
  bool last_row_only = false;  // --rows last
  bool seed_compat = false;
};

struct NeedleReport {
  std::string label;  // e.g. the checkpoint path
  bool differential = false;
  std::vector<DepthStats> depths;
};

// What the analysis reads of a model: its positions (the longest context) and whether its
// attention is differential (the JSON's "attention").
struct NeedleModelInfo {
  int64_t positions = 0;
  bool differential = false;
};
NeedleModelInfo needle_model_info(const TrainableModel& m);

NeedleReport run_needle_analysis(TrainableModel& m, Ctx& ctx, const data::Tokenizer& tok, const NeedleRunOptions& opt);

// The ORIGINAL seed's head-0 map of the given layer from the raw token embeddings (row-major T×T,
// before min-max).
std::vector<double> seed_compat_map(ScratchDecoder& m, Ctx& ctx, const std::vector<int32_t>& ids, int64_t layer);

// JSON with the ORIGINAL keys (avg_answer_attention_per_depth, avg_noise_attention_per_depth,
// attention_ratio_per_depth, individual_answer_attention_per_depth,
// individual_noise_attention_per_depth) plus per-token means, ANR mean/std and the depths.
std::string needle_report_json(const NeedleReport& r);
// CSV rows "model,depth,n,answer_mass,answer_std,noise_mass,noise_std,answer_per_token,
// noise_per_token,anr,anr_std,mass_ratio" for every report.
std::string needle_reports_csv(const std::vector<NeedleReport>& reports);

}  // namespace attnlab::analysis
