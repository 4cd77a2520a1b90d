#pragma once
// The attention layer of a decoder block, and the switch point where a variant replaces it.
//
// Every model builds its attention layers through make_attention_layer(), which looks up the
// variant named in config.json's "attnlab" block ({"attnlab": {"attention": {"variant": "..."}}},
// kept in ModelConfig::attnlab; "standard" when absent) in a registry of factories. A factory
// registers the layer's parameters under the HF names (so pretrained weights load into any
// variant that keeps them) and returns the layer. An unknown variant is an error that lists the
// registered ones.
//
// Adding a variant: write the layer (derive from AttentionLayer), then add one line registering
// its factory to builtin_attention_variants() in attention_layer.cpp. Registration from a static
// initialiser in the variant's own file is NOT enough: attnlab_core is a static library, and the
// linker drops object files nothing refers to.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/hf_config.h"
#include "core/layers/activations.h"
#include "core/layers/param.h"

namespace attnlab {

// What a factory gets.
struct AttentionLayerArgs {
  const ModelConfig& config;
  int64_t layer = 0;                      // block index
  std::string prefix;                     // HF module name: "model.layers.3.self_attn", "transformer.h.3.attn"
  ParamStore& params;                     // register the layer's parameters here
  const nlohmann::ordered_json& options;  // the "attention" object of the attnlab block (null when absent)
};

// Model-level parameters a variant may read, bound after the whole model is built.
struct AttentionModelRefs {
  Param* lm_head_weight = nullptr;  // [V, D]: the LM head (the embedding when tied)
};

class AttentionLayer {
 public:
  virtual ~AttentionLayer() = default;
  virtual const std::string& name() const = 0;
  virtual void bind_model(const AttentionModelRefs& refs) {}
  // Saved slots for (B, T) and scratch; called twice with the same arguments (see ActivationPlanner).
  virtual void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) = 0;
  // x [B, T, D] the block's normalised input (kept by the block until backward); y [B, T, D] written.
  virtual void forward(Ctx& ctx, const Tensor& x, const Tensor& y) = 0;
  // dy [B, T, D]; dx [B, T, D] overwritten (must not alias dy); parameter gradients accumulate.
  virtual void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) = 0;
};

using AttentionFactory = std::function<std::unique_ptr<AttentionLayer>(const AttentionLayerArgs&)>;

// Registers a variant (throws when the name is taken).
void register_attention_variant(const std::string& name, AttentionFactory factory);
// Registered names, sorted.
std::vector<std::string> attention_variant_names();
// The variant config.json asks for: attnlab.attention.variant, or "standard".
std::string attention_variant_of(const ModelConfig& config);
// Builds the layer of the configured variant; throws naming config.source and the registered variants.
std::unique_ptr<AttentionLayer> make_attention_layer(const AttentionLayerArgs& args);

// The options object every variant reads from (null when the block has no "attention" object).
const nlohmann::ordered_json& attention_options(const ModelConfig& config);
// Throws unless every key of `options` is in `known` (naming the variant, the key and the known keys).
void check_attention_option_keys(const nlohmann::ordered_json& options, const std::string& variant,
                                 const std::vector<std::string>& known, const std::string& source);

}  // namespace attnlab
