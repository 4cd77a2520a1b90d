#include "core/train/model_setup.h"

#include <filesystem>

#include "core/memory.h"
#include "core/models/scratch_decoder.h"
#include "core/models/scratch_decoder_config.h"
#include "core/models/weights.h"

namespace attnlab::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

ojson reference_config_json(const std::string& arch) {
  if (arch == "gpt2")
    return ojson{{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"activation_function", "gelu_new"},
                 {"attn_pdrop", 0.1}, {"embd_pdrop", 0.1}, {"resid_pdrop", 0.1}, {"initializer_range", 0.02},
                 {"layer_norm_epsilon", 1e-5}, {"n_embd", 768}, {"n_head", 12}, {"n_layer", 12},
                 {"n_positions", 1024}, {"n_ctx", 1024}, {"n_inner", nullptr}, {"vocab_size", 50257},
                 {"bos_token_id", 50256}, {"eos_token_id", 50256}, {"tie_word_embeddings", true}};
  if (arch == "qwen2")
    return ojson{{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"hidden_act", "silu"},
                 {"attention_dropout", 0.0}, {"initializer_range", 0.02}, {"rms_norm_eps", 1e-6},
                 {"rope_theta", 1000000.0}, {"use_sliding_window", false}, {"vocab_size", 151936},
                 {"bos_token_id", 151643}, {"eos_token_id", 151643}, {"tie_word_embeddings", true},
                 {"hidden_size", 896}, {"intermediate_size", 4864}, {"num_hidden_layers", 24},
                 {"num_attention_heads", 14}, {"num_key_value_heads", 2}, {"max_position_embeddings", 32768}};
  if (arch == "qwen3")
    return ojson{{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_act", "silu"},
                 {"attention_dropout", 0.0}, {"initializer_range", 0.02}, {"rms_norm_eps", 1e-6},
                 {"rope_theta", 1000000.0}, {"use_sliding_window", false}, {"vocab_size", 151936},
                 {"bos_token_id", 151643}, {"eos_token_id", 151643}, {"tie_word_embeddings", true},
                 {"hidden_size", 1024}, {"intermediate_size", 3072}, {"num_hidden_layers", 28},
                 {"num_attention_heads", 16}, {"num_key_value_heads", 8}, {"head_dim", 128},
                 {"attention_bias", false}, {"max_position_embeddings", 32768}};
  FAIL_WITH("model.from init:", arch, ": attnlab has no model of this architecture yet; init: builds gpt2, qwen2 "
            "or qwen3 (the from-scratch decoders of the differential-attention study come with that study)");
}

namespace {

const char* norm_name(config::AttentionNorm n) {
  switch (n) {
    case config::AttentionNorm::softmax: return "softmax";
    case config::AttentionNorm::linear: return "linear";
    case config::AttentionNorm::ramp: return "ramp";
  }
  return "softmax";
}

const char* variant_name(config::AttentionVariant v) {
  switch (v) {
    case config::AttentionVariant::standard: return "standard";
    case config::AttentionVariant::differential: return "differential";
    case config::AttentionVariant::two_pass: return "two_pass";
  }
  return "standard";
}

const char* controller_name(config::ScoreController c) {
  switch (c) {
    case config::ScoreController::none: return "none";
    case config::ScoreController::info_density: return "info_density";
    case config::ScoreController::temperature: return "temperature";
  }
  return "none";
}

}  // namespace

ModelConfig experiment_model_config(const config::ExperimentConfig& cfg) {
  const config::ModelSetupConfig& m = cfg.model;
  ojson json;
  std::string source;
  if (m.random_init()) {
    json = reference_config_json(m.init_arch());
    source = "model.from " + m.from;
  } else {
    const std::string path = (fs::path(m.from) / "config.json").string();
    CHECK(fs::is_directory(m.from), "model.from '", m.from, "' is not a folder. Fix: point it at an HF model folder "
          "(config.json + model.safetensors), make one with `attnlab init --arch qwen2 --tiny --out DIR`, or use "
          "init:<arch> for random weights");
    json = load_hf_config(path).raw;
    source = path;
  }
  for (const auto& [key, text] : m.arch) {
    ojson value = ojson::parse(text, nullptr, false);
    json[key] = value.is_discarded() ? ojson(text) : value;
  }
  const config::ResolvedConfig& r = cfg.resolved;
  const bool any_attention = r.is_given("model.attention.variant") || r.is_given("model.attention.norm") ||
                             r.is_given("model.attention.ramp_alpha") || r.is_given("model.attention.controller");
  if (any_attention) {
    ojson& block = json["attnlab"]["attention"];
    if (r.is_given("model.attention.variant")) block["variant"] = variant_name(m.attention.variant);
    if (r.is_given("model.attention.norm")) block["norm"] = norm_name(m.attention.norm);
    if (m.attention.ramp_alpha) block["ramp_alpha"] = *m.attention.ramp_alpha;
    if (r.is_given("model.attention.controller") && m.attention.controller != config::ScoreController::none)
      block["controller"] = controller_name(m.attention.controller);
  }
  if (!m.arch.empty()) source += " with model.arch overrides";
  return parse_hf_config(json.dump(), source);
}

ScratchDecoderConfig experiment_scratch_config(const config::ExperimentConfig& cfg, const TokenRows& rows) {
  ScratchDecoderConfig sc = scratch_decoder_config(cfg.model);
  if (!rows.packed) return sc;
  const bool given = cfg.model.arch.count("pad_token_id") > 0;
  if (!given) {
    sc.pad_id = -1;  // no position of a packed window is padding
    return sc;
  }
  if (rows.separator >= 0 && sc.pad_id == rows.separator)
    FAIL_WITH("model.arch.pad_token_id ", sc.pad_id,
        " is the id that separates the packed documents (the data's EOS); its embedding row would stay at zero and "
        "never train, so the separator would carry no information. Packed pretraining has no padding. Fix: remove "
        "model.arch.pad_token_id (no padding row), or set it to an id the data never holds");
  return sc;
}

BuiltModel build_model(const config::ExperimentConfig& cfg, const ModelConfig& mc, DType dtype, Ctx& ctx,
                       bool need_master_source, const TokenRows& rows) {
  const uint64_t seed = uint64_t(cfg.run.seed);
  const bool scratch = is_scratch_decoder(cfg.model);
  const ScratchDecoderConfig sc = scratch ? experiment_scratch_config(cfg, rows) : ScratchDecoderConfig{};
  auto construct = [&](const ModelOptions& o, const Ctx& c) -> std::unique_ptr<TrainableModel> {
    if (scratch) return std::make_unique<ScratchDecoder>(sc, o, c);
    return std::make_unique<Model>(mc, o, c);
  };
  // A model with its initial weights, on c's device.
  auto make = [&](const ModelOptions& o, Ctx& c) {
    std::unique_ptr<TrainableModel> m = construct(o, c);
    if (scratch) init_scratch_decoder(static_cast<ScratchDecoder&>(*m), c, seed);
    else if (cfg.model.random_init()) init_weights(static_cast<Model&>(*m), c, seed);
    else load_weights(static_cast<Model&>(*m), c, cfg.model.from);
    return m;
  };
  BuiltModel b;
  if (dtype != DType::bf16) {
    b.model = make(ModelOptions{ctx.device, dtype, true, cfg.model.vocab_multiple}, ctx);
    return b;
  }
  // bf16: the values come in at full precision on the CPU first, so the f32 master weights do not
  // start from already-rounded numbers; the working copy is rounded from them.
  b.model = construct(ModelOptions{ctx.device, dtype, true, cfg.model.vocab_multiple}, ctx);
  Ctx cpu = Ctx::make_cpu(seed);
  std::unique_ptr<TrainableModel> source =
      make(ModelOptions{Device::cpu, DType::f32, false, cfg.model.vocab_multiple}, cpu);
  for (const Param& p : source->params()) from_host_f64(ctx, b.model->params().at(p.name).value, to_host_f64(cpu, p.value));
  if (need_master_source) b.master_source = std::move(source);
  return b;
}

}  // namespace attnlab::train
