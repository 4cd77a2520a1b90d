// The attention options table (core/config/attention_options.h): one declaration drives the YAML
// fields, config.json's attnlab block and validate; every combination no layer builds is refused
// by validate with the FILE:LINE:COLUMN of the offending value; init:<arch> overrides name real keys
// and buildable shapes.
#include "config/config_test_util.h"
#include "core/config/attention_options.h"
#include "core/config/buildable.h"
#include "core/config/registry.h"
#include "core/io/reference_configs.h"

namespace attnlab::test {

using namespace attnlab::config;

namespace {

std::string base_yaml(const std::string& from, const std::string& model_extra) {
  return "task: pretrain\nrun:\n  name: tiny\nmodel:\n  from: " + from + "\n" + model_extra +
         "data:\n  path: corpus.txt\ntrain:\n  steps: 10\n";
}

struct Refusal {
  const char* name;
  std::string from;
  std::string model_extra;
  const char* needle;    // where the problem must point
  const char* fragment;  // what it must say
};

TEST(AttentionOptions, EveryUserOptionIsAYamlFieldWithTheTablesChoices) {
  for (const AttentionOptionDecl& d : attention_option_decls()) {
    if (!d.user_facing) continue;
    const FieldSpec* f = nullptr;
    for (const FieldSpec& s : core_fields())
      if (s.path == "model.attention." + d.name) f = &s;
    ASSERT_NE(f, nullptr) << d.name;
    EXPECT_EQ(f->doc, d.doc);
    if (d.text) EXPECT_EQ(f->choices, d.choices) << d.name;
  }
}

TEST(AttentionOptions, ValidateRefusesWhatNoLayerBuildsAtItsLine) {
  const std::vector<Refusal> cases = {
      {"decoder option on an HF architecture", "init:qwen2", "  decoder:\n    rope: true\n", "rope: true",
       "model.decoder.rope is an option of the from-scratch decoders"},
      {"decoder ffn on gpt2", "init:gpt2", "  decoder:\n    ffn: swiglu\n", "ffn: swiglu",
       "takes its positions and FFN from its config.json"},
      {"draft_mask on standard", "init:qwen2", "  attention:\n    draft_mask: none\n", "draft_mask: none",
       "draft_mask is an option of the two_pass variant"},
      {"cached_gather typo", "init:qwen2", "  attention:\n    variant: two_pass\n    cached_gather: draft\n", "draft\n",
       "draft_keys"},
      {"two_pass on a scratch decoder", "init:decoder_paper", "  attention:\n    variant: two_pass\n", "variant: two_pass",
       "from-scratch decoder"},
      {"lambda_init on standard", "init:gpt2", "  attention:\n    lambda_init: 0.5\n", "lambda_init",
       "lambda_init is an option of the differential variant"},
      {"lambda_init on paper", "init:gpt2", "  attention:\n    variant: differential\n    lambda_init: 0.5\n",
       "lambda_init", "paper preset uses"},
      {"preset on standard", "init:gpt2", "  attention:\n    preset: seed\n", "preset: seed",
       "preset is an option of the differential variant"},
      {"controller typo", "init:gpt2", "  attention:\n    controller: temprature\n", "temprature", "temperature"},
      {"scratch preset contradiction", "init:decoder_paper", "  attention:\n    variant: differential\n    preset: seed\n",
       "preset: seed", "contradicts"},
      {"arch key typo", "init:gpt2", "  arch:\n    n_layerz: 4\n", "arch:", "did you mean 'n_layer'"},
      {"heads not dividing", "init:gpt2", "  arch:\n    n_head: 5\n", "arch:", "not a multiple of attention heads 5"},
      {"kv heads", "init:qwen2", "  arch:\n    num_key_value_heads: 3\n", "arch:", "not a multiple of key/value heads 3"},
  };
  for (const Refusal& c : cases) {
    SCOPED_TRACE(c.name);
    TempYaml y(base_yaml(c.from, c.model_extra));
    std::vector<Problem> p;
    try {
      load_runnable_experiment(y.path());
    } catch (const ConfigError& e) {
      p = e.problems();
    }
    ASSERT_EQ(p.size(), 1u) << dump(p);
    EXPECT_EQ(p[0].where, y.at(c.needle)) << p[0].text();
    EXPECT_NE(p[0].message.find(c.fragment), std::string::npos) << p[0].text();
  }
}

TEST(AttentionOptions, ValidateAcceptsWhatTheLayersBuild) {
  for (const std::string& extra :
       {std::string("  attention:\n    variant: differential\n    norm: linear\n    controller: temperature\n"),
        std::string("  attention:\n    variant: differential\n    preset: seed\n    lambda_init: 0.5\n"),
        std::string("  attention:\n    norm: ramp\n    ramp_alpha: 0.25\n    controller: info_density\n"),
        std::string("  attention:\n    impl: materialized\n"),
        std::string("  attention:\n    variant: two_pass\n    draft_mask: none\n    cached_gather: draft_keys\n"),
        // GPT-2 trains with attention dropout unless attn_pdrop is 0; the fused backend has none.
        std::string("  arch:\n    attn_pdrop: 0\n  attention:\n    impl: fused\n    norm: linear\n"),
        std::string("  arch:\n    attn_pdrop: 0\n  attention:\n    impl: fused\n    variant: differential\n")}) {
    SCOPED_TRACE(extra);
    EXPECT_TRUE(buildability_problems(load_experiment_text(base_yaml("init:gpt2", extra), "ok.yaml")).empty());
  }
  // two_pass builds on every pretrained-shaped architecture (Qwen2/2.5, Qwen3, GPT-2).
  for (const char* from : {"init:qwen2", "init:qwen3"})
    EXPECT_TRUE(buildability_problems(load_experiment_text(base_yaml(from, "  attention:\n    variant: two_pass\n"),
                                                           "tp.yaml")).empty()) << from;
  // Differential attention on RoPE models (the model's own rotation per sub-head).
  for (const char* from : {"init:qwen2", "init:qwen3"})
    EXPECT_TRUE(buildability_problems(load_experiment_text(
        base_yaml(from, "  attention:\n    variant: differential\n    norm: linear\n"), "q.yaml")).empty()) << from;
  // The scratch decoders take the block options, norms, controllers and (seed) lambda_init too.
  EXPECT_TRUE(buildability_problems(load_experiment_text(
      base_yaml("init:decoder_paper", "  attention:\n    variant: differential\n  decoder:\n    rope: true\n"
                "    ffn: swiglu\n"), "d.yaml")).empty());
  EXPECT_TRUE(buildability_problems(load_experiment_text(
      base_yaml("init:decoder_seed", "  attention:\n    variant: differential\n    lambda_init: 0.6\n"), "s.yaml")).empty());
  EXPECT_TRUE(buildability_problems(load_experiment_text(
      base_yaml("init:decoder_paper", "  attention:\n    norm: linear\n    controller: temperature\n"), "p.yaml")).empty());
}

// impl: fused on run.device: cuda asks the support matrix (core/ops/attention.h) about the model's
// attention: a head dim the CUDA kernels do not take is refused at impl's line; the same model on
// the CPU (the tiled reference takes every head dim) or with impl: auto validates.
TEST(AttentionOptions, ImplFusedOnCudaIsRefusedWhereTheKernelsDoNotRun) {
  auto yaml = [](const char* device, const char* impl) {
    return std::string("task: pretrain\nrun:\n  name: tiny\n  device: ") + device +
           "\nmodel:\n  from: init:gpt2\n  arch:\n    n_embd: 720\n    attn_pdrop: 0\n  attention:\n    impl: " + impl +
           "\ndata:\n  path: corpus.txt\ntrain:\n  steps: 10\n";
  };
  TempYaml y(yaml("cuda", "fused"));
  std::vector<Problem> p;
  try {
    load_runnable_experiment(y.path());
  } catch (const ConfigError& e) {
    p = e.problems();
  }
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, y.at("impl: fused")) << p[0].text();
  EXPECT_NE(p[0].message.find("head dims 64 and 128 (this layer's is 60)"), std::string::npos) << p[0].text();
  EXPECT_NE(p[0].message.find("impl: auto"), std::string::npos) << p[0].text();
  EXPECT_TRUE(buildability_problems(load_experiment_text(yaml("cpu", "fused"), "cpu.yaml")).empty());
  EXPECT_TRUE(buildability_problems(load_experiment_text(yaml("cuda", "auto"), "auto.yaml")).empty());
  // gpt2's own head dim (64) runs fused on the GPU.
  const std::string ok = yaml("cuda", "fused");
  const std::string gpt2 = ok.substr(0, ok.find("    n_embd:")) + ok.substr(ok.find("    attn_pdrop:"));
  EXPECT_TRUE(buildability_problems(load_experiment_text(gpt2, "gpt2.yaml")).empty()) << gpt2;
}

// GPT-2 trains with attention dropout (attn_pdrop, 0.1 when config.json lacks it), which the fused
// backend does not have: impl: fused is refused at its line on every device unless attn_pdrop is 0.
TEST(AttentionOptions, ImplFusedIsRefusedWhereTrainingAppliesAttentionDropout) {
  const std::string base = "task: pretrain\nrun:\n  name: tiny\n  device: cpu\nmodel:\n  from: init:gpt2\n";
  const std::string rest = "  attention:\n    impl: fused\ndata:\n  path: corpus.txt\ntrain:\n  steps: 10\n";
  TempYaml y(base + rest);
  std::vector<Problem> p;
  try {
    load_runnable_experiment(y.path());
  } catch (const ConfigError& e) {
    p = e.problems();
  }
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, y.at("impl: fused")) << p[0].text();
  EXPECT_NE(p[0].message.find("attention dropout"), std::string::npos) << p[0].text();
  EXPECT_NE(p[0].message.find("model.arch.attn_pdrop=0"), std::string::npos) << p[0].text();
  EXPECT_TRUE(buildability_problems(load_experiment_text(base + "  arch:\n    attn_pdrop: 0\n" + rest, "z.yaml")).empty());
  // Qwen models have no attention dropout.
  std::string qwen = base;
  qwen.replace(qwen.find("init:gpt2"), 9, "init:qwen2");
  EXPECT_TRUE(buildability_problems(load_experiment_text(qwen + rest, "q.yaml")).empty());
}

TEST(AttentionOptions, JsonRoundTripAndErrorsNameTheKey) {
  AttentionOptions o;
  o.variant = "differential";
  o.preset = "seed";
  o.lambda_init = 0.7;
  o.controller = "temperature";
  const auto j = attention_options_to_json(o);
  EXPECT_EQ(j.size(), 4u) << j.dump();  // defaults are left out
  const AttentionOptions back = attention_options_from_json(j, "x.json");
  EXPECT_EQ(back.preset, "seed");
  EXPECT_EQ(back.lambda_init.value_or(0), 0.7);
  EXPECT_EQ(back.controller, "temperature");
  auto error = [](const char* text) {
    try {
      attention_options_from_json(nlohmann::ordered_json::parse(text), "cfg.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(R"({"nrom": "linear"})").find("unknown key 'nrom'"), std::string::npos);
  EXPECT_NE(error(R"({"norm": "cubic"})").find("attnlab.attention.norm is \"cubic\""), std::string::npos);
  EXPECT_NE(error(R"({"ramp_alpha": 2})").find("[0, 1]"), std::string::npos);
  EXPECT_NE(error(R"({"norm": "ramp"})").find("needs attnlab.attention.ramp_alpha"), std::string::npos);
  EXPECT_NE(error(R"({"norm": "ramp"})").find("cfg.json"), std::string::npos);
}

TEST(ReferenceConfigs, OverridesNameKeysTheArchitectureHas) {
  EXPECT_EQ(config_override_problem("qwen2", "num_hidden_layers"), "");
  EXPECT_EQ(config_override_problem("gpt2", "attnlab.attention.norm"), "");
  EXPECT_NE(config_override_problem("gpt2", "n_layerz").find("did you mean 'n_layer'"), std::string::npos);
  EXPECT_NE(config_override_problem("qwen3", "attnlab.attention.nrom").find("attnlab.attention.norm"),
            std::string::npos);
  nlohmann::ordered_json j = reference_config_json("gpt2");
  EXPECT_EQ(hf_config_shape_problem(j, "gpt2"), "");
  j["n_head"] = 7;
  EXPECT_NE(hf_config_shape_problem(j, "gpt2").find("not a multiple of attention heads 7"), std::string::npos);
}

}  // namespace
}  // namespace attnlab::test
