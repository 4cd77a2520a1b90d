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

#include "core/config/attention_options.h"
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

// The K and V buffers one layer's KV cache holds per sequence: K [k_heads, S_cap, k_dim] and
// V [v_heads, S_cap, v_dim]. All zeros: the model config's Hkv × head_dim for both.
struct KvCacheShape {
  int64_t k_heads = 0, k_dim = 0, v_heads = 0, v_dim = 0;
};

// One call of KV-cache inference (core/models/cached_forward.h): T new tokens for each of B
// sequences, whose keys and values the layer appends to its cache before attending over it.
// Rows may sit at different lengths (right-padded prompts): `positions` says where each token
// goes, `key_lengths` how many keys each row sees; cache slots at or beyond a row's key length
// hold padding (finite values) that the attention masks.
struct CachedAttentionArgs {
  Tensor x;                  // in  [B, T, D] the block's normalised input
  Tensor y;                  // out [B, T, D]
  Tensor k_cache;            // in/out [B, k_heads, S_cap, k_dim] this layer's keys (kv_cache_shape(); heads-first,
                             //    the attention op's layout unless the variant keeps its own)
  Tensor v_cache;            // in/out [B, v_heads, S_cap, v_dim] this layer's values
  Tensor positions;          // in i32 [B, T]: token t of row b sits at this position: its cache slot and
                             //    its RoPE (or learned) position
  Tensor key_lengths;        // in i32 [B]: keys row b sees after this call's writes
  int64_t keys = 0;          // S: cache slots the attention reads, ≥ every key length, ≤ S_cap
  int64_t query_offset = 0;  // query t sees keys j ≤ t + query_offset (then capped by key_lengths):
                             //    0 for a prefill from slot 0, S − 1 for a one-token decode step
  Arena* scratch = nullptr;  // emptied by the caller before the call; holds ≥ cached_scratch_bytes()
};

// Model-level parameters a variant may read, bound after the whole model is built.
struct AttentionModelRefs {
  // [Vp, D]: the LM head (the embedding when tied); rows ≥ V (Param::pad_rows) are zero padding.
  // Read-only in a block's backward: with data parallelism the head's gradient is already being
  // reduced while the blocks run (grad_sync.h).
  Param* lm_head_weight = nullptr;
};

class AttentionLayer {
 public:
  virtual ~AttentionLayer() = default;
  virtual const std::string& name() const = 0;
  virtual void bind_model(const AttentionModelRefs& refs) {}
  // Training mode (attention-probability dropout, GPT-2's attn_pdrop, where the variant has it).
  virtual void set_training(bool training) {}
  // Saved slots for (B, T) and scratch; called twice with the same arguments (see ActivationPlanner).
  virtual void plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) = 0;
  // x [B, T, D] the block's normalised input (kept by the block until backward); y [B, T, D] written.
  virtual void forward(Ctx& ctx, const Tensor& x, const Tensor& y) = 0;
  // dy [B, T, D]; dx [B, T, D] overwritten (must not alias dy); parameter gradients accumulate.
  virtual void backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) = 0;

  // KV-cache inference (generation). Independent of plan/forward/backward: it keeps no state and
  // takes its memory from args.scratch. A variant that supports generation overrides both; the
  // defaults refuse, naming the layer.
  // Scratch bytes one forward_cached call with B rows, T new tokens and S visible slots needs.
  virtual size_t cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
    FAIL_WITH("attention layer '", name(), "' does not implement KV-cache inference (generation); its variant must ",
              "override AttentionLayer::cached_scratch_bytes and forward_cached");
  }
  virtual void forward_cached(Ctx& ctx, const CachedAttentionArgs& args) {
    FAIL_WITH("attention layer '", name(), "' does not implement KV-cache inference (generation)");
  }
  // The cache buffers forward_cached reads and writes (zeros: the model config's Hkv × head_dim).
  virtual KvCacheShape kv_cache_shape() const { return {}; }
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
