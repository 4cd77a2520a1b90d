#include "train/model_setup.h"

#include <filesystem>

#include "core/config/head_options.h"
#include "core/io/reference_configs.h"
#include "core/memory.h"
#include "core/models/scratch_decoder.h"
#include "core/models/scratch_decoder_config.h"
#include "core/models/weights.h"

namespace attnlab::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;



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
  // The options the experiment gives override the folder's own attnlab block, key by key (a
  // pretrained folder saved by attnlab keeps its variant unless the experiment says otherwise).
  const config::ResolvedConfig& r = cfg.resolved;
  const ojson given = attention_options_to_json(m.attention);
  for (const AttentionOptionDecl& d : attention_option_decls()) {
    if (!d.user_facing || !r.is_given("model.attention." + d.name)) continue;
    if (given.contains(d.name)) {
      json["attnlab"]["attention"][d.name] = given[d.name];
    } else if (json.contains("attnlab") && json["attnlab"].is_object() && json["attnlab"].contains("attention") &&
               json["attnlab"]["attention"].is_object()) {
      json["attnlab"]["attention"].erase(d.name);  // given as its default: the default holds
    }  // (a folder without an attnlab block already has the default: nothing to write)
  }
  // The head: model.head and model.backward_head.* over the folder's own attnlab.head (a folder saved
  // with the backward head keeps it unless the experiment says otherwise).
  {
    bool any = r.is_given("model.head");
    for (const HeadOptionDecl& d : backward_head_option_decls()) any = any || r.is_given("model.backward_head." + d.name);
    if (any) {
      const ojson old = json.contains("attnlab") && json["attnlab"].contains("head") ? json["attnlab"]["head"] : ojson();
      const std::string old_kind = head_kind_from_json(old, source);
      const std::string kind = r.is_given("model.head") ? m.head : old_kind;
      BackwardHeadOptions o =
          old_kind == "backward_head" ? backward_head_options_from_json(old, source) : BackwardHeadOptions{};
      for (const HeadOptionDecl& d : backward_head_option_decls())
        if (r.is_given("model.backward_head." + d.name))
          std::visit([&](auto mem) { o.*mem = m.backward_head.*mem; }, d.member);
      if (kind == "lm_head") {
        if (json.contains("attnlab") && json["attnlab"].is_object()) json["attnlab"].erase("head");
      } else {
        json["attnlab"]["head"] = head_options_to_json(kind, o);
      }
    }
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
