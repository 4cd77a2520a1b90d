#include "core/models/scratch_decoder_config.h"

#include <nlohmann/json.hpp>

namespace attnlab {

bool is_scratch_decoder(const config::ModelSetupConfig& m) {
  const std::string a = m.init_arch();
  return a == "decoder_paper" || a == "decoder_seed";
}

ScratchDecoderConfig scratch_decoder_config(const config::ModelSetupConfig& m) {
  CHECK(is_scratch_decoder(m), "model.from '", m.from, "' is not a from-scratch decoder; use init:decoder_paper or "
        "init:decoder_seed");
  ScratchDecoderConfig c;
  c.preset = m.init_arch() == "decoder_seed" ? ScratchDecoderConfig::Preset::seed : ScratchDecoderConfig::Preset::paper;
  CHECK(m.attention.variant == "standard" || m.attention.variant == "differential", "model.from ", m.from,
        ": model.attention.variant must be standard or differential, got ", m.attention.variant);
  c.differential = m.attention.variant == "differential";
  // Every other attention option (norm, controller, lambda_init, impl) goes to the layers as given;
  // the preset and the baseline's layout follow the architecture.
  c.attention = m.attention;
  c.attention.preset = c.preset == ScratchDecoderConfig::Preset::seed ? "seed" : "paper";
  c.decoder = m.decoder;
  bool head_dim_given = false, ffn_given = false;
  for (const auto& [key, text] : m.arch) {
    const auto v = nlohmann::json::parse(text, nullptr, false);
    CHECK(!v.is_discarded() && v.is_number(), "model.arch.", key, " must be a number, got '", text, "'");
    const double x = v.get<double>();
    auto integer = [&]() {
      CHECK(x == double(int64_t(x)), "model.arch.", key, " must be an integer, got ", text);
      return int64_t(x);
    };
    if (key == "hidden_size") c.hidden = integer();
    else if (key == "num_hidden_layers") c.layers = integer();
    else if (key == "num_attention_heads") c.heads = integer();
    else if (key == "head_dim") c.head_dim = integer(), head_dim_given = true;
    else if (key == "intermediate_size") c.ffn = integer(), ffn_given = true;
    else if (key == "vocab_size") c.vocab_size = integer();
    else if (key == "max_position_embeddings") c.context = integer();
    else if (key == "pad_token_id") c.pad_id = integer();
    else if (key == "dropout") c.dropout = x;
    else
      FAIL_WITH("model.arch.", key, " is not a key of the from-scratch decoders; they take hidden_size, "
                "num_hidden_layers, num_attention_heads, head_dim, intermediate_size, vocab_size, "
                "max_position_embeddings, pad_token_id, dropout");
  }
  if (!head_dim_given) {
    CHECK(c.heads > 0 && c.hidden % c.heads == 0, "model.arch: hidden_size ", c.hidden,
          " is not a multiple of num_attention_heads ", c.heads);
    c.head_dim = c.hidden / c.heads;
  }
  if (c.decoder.ffn == "swiglu" && !ffn_given) c.ffn = scratch_swiglu_hidden(c.hidden);
  return c;
}

}  // namespace attnlab
