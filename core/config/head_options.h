#pragma once
// The output-head options, declared once (like core/config/attention_options.h).
//
// One table (backward_head_option_decls) names every option of the backward attention head
// (METHODS §5.3): its type, default, range and doc. It drives
//   - YAML: `model.head: lm_head | lm_head_untied | backward_head` and `model.backward_head.<option>`
//     (core/config/model_config.cpp), hence the loader, overrides, `attnlab config fields` and
//     `attnlab validate`;
//   - config.json's head block {"attnlab": {"head": {"kind": "backward_head", "heads": 4, ...}}}, read
//     by the head (head_options_from_json) and written by the trainer (head_options_to_json), so a
//     saved folder reloads with the head it was trained with.
// Heads: lm_head (the model's own, tied or untied as config.json says), lm_head_untied (a separate
// lm_head.weight that starts as a copy of the tied embedding: the parameter-matched head baseline of
// METHODS §5.7), backward_head (core/layers/backward_attention_head.h).
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnlab {

struct BackwardHeadOptions {
  int64_t latent = 0;     // r of the latent projection; 0 = off
  int64_t dk = 0;         // key/query width; 0 = r
  int64_t dv = 0;         // value width; 0 = r
  int64_t heads = 1;      // H (mixture of softmaxes when > 1); divides dk and dv
  int64_t top_k = 0;      // top-k restriction of w = softmax(z/τ); 0 = all V
  double tau = 1.0;       // τ of w
  int64_t tile = 8192;    // vocabulary rows per tile
  bool learn_beta = true; // false: β stays 1 (METHODS §5.3 --no-beta)
};

struct HeadOptionDecl {
  std::string name;
  std::string doc;
  std::variant<int64_t BackwardHeadOptions::*, double BackwardHeadOptions::*, bool BackwardHeadOptions::*> member;
  double lo = 0, hi = 0;  // numbers: [lo, hi]
};

// The head kinds (the choices of model.head; the head slot registers the same names).
const std::vector<std::string>& head_kind_choices();
// Every backward_head option, in the order `attnlab config fields` lists them.
const std::vector<HeadOptionDecl>& backward_head_option_decls();

// What is wrong with a combination (dk/dv/heads divisibility), one message per problem; `prefix`
// names the options ("model.backward_head." or "attnlab.head.").
std::vector<std::string> backward_head_option_problems(const BackwardHeadOptions& o, int64_t hidden,
                                                       const std::string& prefix);

// config.json's head block → kind (null: lm_head). Throws naming `source` and the fix.
std::string head_kind_from_json(const nlohmann::ordered_json& block, const std::string& source);
// The head block → options (unknown keys, wrong types and out-of-range values are one error naming
// `source`); keys other than "kind" are refused for the other heads.
BackwardHeadOptions backward_head_options_from_json(const nlohmann::ordered_json& block, const std::string& source);
// kind + options → the head block ({"kind": ...} plus the options that differ from the defaults).
nlohmann::ordered_json head_options_to_json(const std::string& kind, const BackwardHeadOptions& o);

}  // namespace attnlab
