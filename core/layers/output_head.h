#pragma once
// The head slot: what turns the final hidden states into logits (and the training loss), shared by
// training, plain forward and generation (DESIGN.md §6). Heads are registered by name, like
// attention variants; config.json's attnlab block picks one ({"attnlab": {"head": {"kind": "..."}}},
// "lm_head" when absent). Today: "lm_head", the tied or untied HF LM head with the fused
// cross-entropy (core/layers/lm_head.h); "lm_head_untied", the same over a separate lm_head.weight that
// starts as a copy of the tied embedding (METHODS §5.7 baseline c); "backward_head", the backward
// attention head of METHODS §5 (core/layers/backward_attention_head.h). Their options are the table of
// core/config/head_options.h.
//
// Adding a head: implement OutputHead, add one line to builtin_output_heads() in output_head.cpp
// (a static initialiser in the head's own file would be dropped by the static library's linker).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arena.h"
#include "core/io/hf_config.h"
#include "core/layers/activations.h"
#include "core/layers/param.h"

namespace attnlab {

struct OutputHeadArgs {
  const ModelConfig& config;
  ParamStore& params;
  Param* token_embedding = nullptr;                         // [Vp, D], padded rows zero
  std::function<Param*(const std::string&)> add_vocab_table;  // registers a [Vp, D] table (HF name)
  const nlohmann::ordered_json& options;                    // the "head" object of the attnlab block
};

class OutputHead {
 public:
  virtual ~OutputHead() = default;
  virtual const std::string& name() const = 0;
  virtual void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) = 0;
  // h [B, T, D] → logits; with targets ([B, T] i32) also the loss Σ / valid_count into loss().
  virtual void forward(Ctx& ctx, const Tensor& h, const Tensor& targets, double valid_count) = 0;
  // dh [B, T, D] overwritten; the head's parameter gradients accumulate.
  virtual void backward(Ctx& ctx, const Tensor& h, const Tensor& dh) = 0;
  // [B·T, Vp] between forward and backward; columns ≥ V are padding.
  virtual Tensor padded_logits() const = 0;
  virtual int64_t padded_vocab() const = 0;
  virtual const Tensor& loss() const = 0;
  // Generation: logits [N, V] (no padding columns) of N rows h [N, D]; buffers from `scratch`
  // (at least logits_rows_bytes), nothing saved.
  virtual void logits_rows(Ctx& ctx, const Tensor& h, const Tensor& logits, Arena& scratch) const = 0;
  virtual size_t logits_rows_bytes(DType dt, int64_t N) const = 0;
  // The [Vp, D] vocabulary table attention variants may read (AttentionModelRefs::lm_head_weight).
  virtual Param* vocab_table() const = 0;
};

using OutputHeadFactory = std::function<std::unique_ptr<OutputHead>(const OutputHeadArgs&)>;

// Registers a head (throws when the name is taken).
void register_output_head(const std::string& kind, OutputHeadFactory factory);
std::vector<std::string> output_head_names();
// The kind config.json asks for (attnlab.head.kind), or "lm_head".
std::string output_head_kind(const ModelConfig& config);
// Builds the configured head; throws naming config.source and the registered kinds.
std::unique_ptr<OutputHead> make_output_head(const OutputHeadArgs& args);

}  // namespace attnlab
