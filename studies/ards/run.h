#pragma once
// Running ARDS prompts on a loaded model (studies/ards/ards.h): the cached generation of one prompt
// with the mode's probes attached, its diagnostics collected and the sink cleared, and the files of
// one prompt (JSON, CSV). `attnlab ards run` (tools/attnlab/cmd_ards.cpp) is this plus loading.
#include <string>
#include <vector>

#include "core/models/generate.h"
#include "studies/ards/ards.h"

namespace attnlab::ards {

// The ramp weight each layer's attention uses (its op spec), in layer order.
std::vector<double> layer_ramp_alphas(Model& model);

struct PromptRun {
  std::string prompt;
  std::vector<int32_t> ids;
  GenerationResult generation;
  PromptDiagnostics diagnostics;
  double seconds = 0;  // generation wall time, diagnostics collection included
};

// Generates for one prompt under `mode` (the model must have been loaded with
// attention_overrides(mode)). `seed` seeds the sampled records (ctx.seed seeds the tokens).
PromptRun run_prompt(Model& model, Ctx& ctx, const std::vector<int32_t>& ids, const GenerationConfig& config,
                     Mode mode, double sampling_rate, uint64_t seed, const data::Tokenizer* tokenizer = nullptr);

// Writes <dir>/prompt_<n>_<mode>.json (prompt, response, tokens, generation settings, diagnostics)
// and <dir>/prompt_<n>_<mode>.csv; returns the JSON's path.
std::string write_prompt_files(const std::string& dir, int64_t n, const PromptRun& run, const GenerationConfig& config,
                               const std::string& model, uint64_t seed, double sampling_rate);

}  // namespace attnlab::ards
