#pragma once
// The experiment YAML → ScratchDecoderConfig: `model.from: init:decoder_paper | init:decoder_seed`
// picks the preset, `model.attention.variant: standard | differential` the attention, and
// `model.arch` overrides sizes with HF-style keys (hidden_size, num_hidden_layers,
// num_attention_heads, head_dim, intermediate_size, vocab_size, max_position_embeddings,
// pad_token_id, dropout). head_dim defaults to hidden_size / num_attention_heads. `model.decoder`
// (rope, ffn) shapes the blocks; with ffn: swiglu and no intermediate_size the hidden size is
// scratch_swiglu_hidden(hidden_size).
#include "core/config/model_config.h"
#include "core/models/scratch_decoder.h"

namespace attnlab {

// Whether model.from names one of the from-scratch decoders.
bool is_scratch_decoder(const config::ModelSetupConfig& m);
// Throws for another model.from, a variant or norm these decoders lack, or an unknown arch key.
ScratchDecoderConfig scratch_decoder_config(const config::ModelSetupConfig& m);

}  // namespace attnlab
