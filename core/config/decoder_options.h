#pragma once
// The from-scratch decoders' block options (METHODS §3.5 flags `--rope` and `--ffn swiglu`),
// declared once. One table (decoder_option_decls) drives
//   - YAML's `model.decoder.*` fields (core/config/model_config.cpp), hence the loader, the
//     overrides, `attnlab config fields` and `attnlab validate` (which refuses them on models that
//     are not from-scratch decoders, core/config/buildable.cpp);
//   - the record of a saved decoder (the "decoder_options" metadata of its model.safetensors, read
//     back by the needle study's `attnlab analyze needle` and by resume), through
//     decoder_options_to_json / decoder_options_from_json.
//
//   rope: true    rotary positions, θ = 10,000, on q and k of every head (rotate-half pairs for the
//                 standard baseline, interleaved pairs for differential attention, applied to each
//                 of its two sub-heads of dim d, as the official Diff-Transformer code); they
//                 replace the learned position table (LLaMA-style block: no pos_emb.weight).
//   ffn: swiglu   LLaMA-style gated FFN down(silu(gate(x)) ⊙ up(x)), no biases, no inner dropout;
//                 hidden size intermediate_size when model.arch gives it, else 8/3·D rounded up to
//                 a multiple of 64 (scratch_swiglu_hidden, core/models/scratch_decoder.h).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnlab {

struct DecoderOptions {
  bool rope = false;
  std::string ffn = "gelu";  // gelu | swiglu

  bool operator==(const DecoderOptions&) const = default;
};

struct DecoderOptionDecl {
  std::string name;
  std::string doc;
  std::vector<std::string> choices;           // enumerations (text); empty for flags
  std::string def;                            // text default
  std::string DecoderOptions::*text = nullptr;
  bool DecoderOptions::*flag = nullptr;       // flags default to false
};

// Every option, in the order `attnlab config fields` lists them.
const std::vector<DecoderOptionDecl>& decoder_option_decls();
// Whether the option has its default value in `o`.
bool decoder_option_is_default(const DecoderOptionDecl& d, const DecoderOptions& o);

// Options → JSON object (only values that differ from the defaults; empty object when none), and
// back (null: defaults). from_json throws naming `source`, every bad key or value and the fix.
nlohmann::ordered_json decoder_options_to_json(const DecoderOptions& o);
DecoderOptions decoder_options_from_json(const nlohmann::ordered_json& j, const std::string& source);
// "rope, swiglu FFN"-style words for logs and describe(); empty for the defaults.
std::string decoder_options_words(const DecoderOptions& o);

}  // namespace attnlab
