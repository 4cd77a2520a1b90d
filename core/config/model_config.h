#pragma once
// The `model:` section: where the weights come from, architecture overrides, and the
// attention variant swapped into every attention layer (spec/METHODS.md, DESIGN.md §5).
// Named ModelSetupConfig because attnlab::ModelConfig is the HF config.json (core/io/hf_config.h).
#include <optional>
#include <string>
#include <vector>

#include "core/config/attention_options.h"
#include "core/config/decoder_options.h"
#include "core/config/field.h"
#include "core/config/head_options.h"

namespace attnlab::config {

// model.attention: the attention options, declared once in core/config/attention_options.h (the
// same table the layers read config.json's attnlab block with).
using AttentionConfig = attnlab::AttentionOptions;

// The architectures `model.from: init:<arch>` can build with random weights.
const std::vector<std::string>& init_architectures();

struct ModelSetupConfig {
  std::string from;  // an HF model folder, or "init:<arch>"
  StringMap arch;    // config.json keys to override, e.g. {num_hidden_layers: 4}
  AttentionConfig attention;
  // model.decoder: the from-scratch decoders' block options (rope, ffn), declared once in
  // core/config/decoder_options.h (the same table their checkpoints record them with).
  DecoderOptions decoder;
  // model.head: the head slot's kind, and model.backward_head.*: its options (the table of
  // core/config/head_options.h), written into config.json's attnlab.head.
  std::string head = "lm_head";
  BackwardHeadOptions backward_head;
  // Embedding / LM head rows rounded up to a multiple of this (aligned logits rows for the head's
  // GEMMs; checkpoints keep [V, C]). 1 = no padding.
  int64_t vocab_multiple = 64;

  bool random_init() const { return from.rfind("init:", 0) == 0; }
  // The <arch> of "init:<arch>"; empty for a folder.
  std::string init_arch() const { return random_init() ? from.substr(5) : std::string(); }
};

void declare_fields(FieldBinder<ModelSetupConfig>& f);

}  // namespace attnlab::config
