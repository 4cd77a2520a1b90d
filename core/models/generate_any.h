#pragma once
// Generation on any model load_any_model opens (core/models/model_loader.h):
//
//   HF-config models (Model: GPT-2, Qwen2/2.5, Qwen3, any attention variant with a KV-cache path)
//     run generate() of core/models/generate.h: KV cache, prompts of different lengths in one batch
//     (each row at its own positions, so a batch gives every prompt the tokens it gets alone under
//     greedy decoding — what left padding with position ids gives in HF).
//   Every other TrainableModel (the from-scratch decoders) has no cached forward: each step runs
//     the full forward over every sequence so far, right-padded to one planned length L = longest
//     prompt + new tokens − 1 (causal attention: padding after a row's last token never reaches
//     it), and samples the logits of each row's last token on the host with the same sampler
//     (core/ops/sampling.h, the same seed stream ctx.take_rng). Quadratic in the length: meant for
//     the small models that have no cache. Learned positions bound L (ScratchDecoder's context):
//     the new tokens are cut to fit, with the note in length_note.
//
// Same GenerationConfig, GenerationResult and callback as generate().
#include <vector>

#include "core/models/generate.h"
#include "core/models/trainable_model.h"

namespace attnlab {

GenerationResult generate_any(TrainableModel& model, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                              const GenerationConfig& config, const data::Tokenizer* tokenizer = nullptr,
                              const TokenCallback& on_token = {});

// The full-forward path above, for any model (also a Model: tests compare the two). `max_positions`
// (> 0) bounds prompt + new − 1 tokens; ≤ 0: no bound.
GenerationResult generate_by_recompute(TrainableModel& model, Ctx& ctx, const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationConfig& config, const data::Tokenizer* tokenizer = nullptr,
                                       const TokenCallback& on_token = {}, int64_t max_positions = 0);

// The stop tokens a model's folder implies when it has no generation_config.json: Model's
// eos_token_ids (config.json); for other models none.
std::vector<int32_t> model_eos_tokens(const TrainableModel& model);

}  // namespace attnlab
