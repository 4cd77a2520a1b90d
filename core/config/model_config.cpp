#include "core/config/model_config.h"

#include "core/config/suggest.h"

namespace attnlab::config {

const std::vector<std::string>& init_architectures() {
  static const std::vector<std::string> archs = {"gpt2", "qwen2", "qwen3", "decoder_paper", "decoder_seed"};
  return archs;
}

namespace {

std::string check_model_source(const Value& v) {
  const std::string& s = std::get<std::string>(v);
  if (s.rfind("init:", 0) != 0) return "";
  std::string arch = s.substr(5);
  for (const auto& a : init_architectures())
    if (a == arch) return "";
  std::string msg = "unknown architecture '" + arch + "' in '" + s + "'; init: takes one of " +
                    join_words(init_architectures(), ", ");
  if (auto near = closest_word(arch, init_architectures())) msg += "; did you mean 'init:" + *near + "'?";
  return msg;
}

std::string check_arch_overrides(const Value& v) {
  for (const auto& [key, value] : std::get<StringMap>(v)) {
    if (key.empty()) return "an architecture override needs a key";
    if (value.empty()) return "architecture override '" + key + "' has no value";
  }
  return "";
}

}  // namespace

void declare_fields(FieldBinder<ModelSetupConfig>& f) {
  f.field("from", &ModelSetupConfig::from,
          "HF model folder (config.json + safetensors), or init:<arch> for random weights")
      .required()
      .check("a folder, or init:" + join_words(init_architectures(), "|"), check_model_source);
  f.field("arch", &ModelSetupConfig::arch,
          "config.json keys to override (HF names, e.g. num_hidden_layers: 4); scalars only")
      .def(StringMap{})
      .check("scalar values", check_arch_overrides);
  f.field("vocab_multiple", &ModelSetupConfig::vocab_multiple,
          "pad the embedding / LM head rows to a multiple of this (aligned logits for the GEMMs; "
          "checkpoints stay [V, C]); 1 = off")
      .def(64)
      .range_closed(1, 4096);

  {
    FieldSpec& h = f.field("head", &ModelSetupConfig::head,
                           "the output head: lm_head (the model's own), lm_head_untied (a separate lm_head.weight "
                           "starting as a copy of the tied embedding), backward_head (METHODS §5)");
    h.type = FieldType::enumeration;
    h.choices = head_kind_choices();
    h.def("lm_head");
  }
  // One field per backward-head option, from the table the head reads (head_options.h).
  FieldBinder<BackwardHeadOptions> bh = f.nested("backward_head", &ModelSetupConfig::backward_head);
  const BackwardHeadOptions bh_def;
  for (const HeadOptionDecl& d : backward_head_option_decls())
    std::visit(
        [&](auto m) {
          using M = std::remove_cvref_t<decltype(bh_def.*m)>;
          FieldSpec& s = bh.field(d.name, m, d.doc);
          if constexpr (std::is_same_v<M, bool>) s.def(bh_def.*m);
          else if constexpr (std::is_same_v<M, int64_t>) s.def(int64_t(bh_def.*m)).range_closed(d.lo, d.hi);
          else s.def(double(bh_def.*m)).range_closed(d.lo, d.hi);
        },
        d.member);

  // One field per attention option, from the table the layers read (attention_options.h).
  FieldBinder<AttentionConfig> a = f.nested("attention", &ModelSetupConfig::attention);
  for (const AttentionOptionDecl& d : attention_option_decls()) {
    if (!d.user_facing) continue;
    if (d.text) {
      FieldSpec& spec = a.field(d.name, d.text, d.doc);
      spec.type = FieldType::enumeration;
      spec.choices = d.choices;
      spec.def(d.def);
    } else {
      a.field(d.name, d.number, d.doc).range_closed(d.lo, d.hi);
    }
  }

  // One field per from-scratch decoder option, from the table their checkpoints use.
  FieldBinder<DecoderOptions> dec = f.nested("decoder", &ModelSetupConfig::decoder);
  for (const DecoderOptionDecl& d : decoder_option_decls()) {
    if (d.flag) {
      dec.field(d.name, d.flag, d.doc).def(false);
    } else {
      FieldSpec& spec = dec.field(d.name, d.text, d.doc);
      spec.type = FieldType::enumeration;
      spec.choices = d.choices;
      spec.def(d.def);
    }
  }
}

}  // namespace attnlab::config
