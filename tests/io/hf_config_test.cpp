#include "core/io/hf_config.h"

#include "core/error.h"
#include "io/io_test_util.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

using ojson = nlohmann::ordered_json;

// config.json as published with the checkpoints; the sizes are the ones METHODS.md §6 lists.
const char* kGpt2 = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_layer": 12,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "summary_activation": null,
  "summary_first_dropout": 0.1,
  "summary_proj_to_labels": true,
  "summary_type": "cls_index",
  "summary_use_proj": true,
  "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

const char* kQwen25_05B = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_mrope": false,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

const char* kQwen3_06B = R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

std::string edited(const char* text, const std::function<void(ojson&)>& edit) {
  ojson j = ojson::parse(text);
  edit(j);
  return j.dump(2);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

void expect_contains(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "message lacks \"" << part << "\":\n  " << msg;
}

void expect_same_fields(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  EXPECT_EQ(a.attnlab, b.attnlab);
}

}  // namespace

TEST(HfConfig, ParsesGpt2) {
  ModelConfig c = parse_hf_config(kGpt2, "gpt2/config.json");
  EXPECT_EQ(c.arch, ModelArch::gpt2);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.num_layers, 12);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.num_kv_heads, 12);
  EXPECT_EQ(c.head_dim, 64);             // derived: 768 / 12
  EXPECT_EQ(c.intermediate_size, 3072);  // derived: n_inner absent -> 4 * 768
  EXPECT_EQ(c.vocab_size, 50257);
  EXPECT_EQ(c.max_position_embeddings, 1024);
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 0.0);
  EXPECT_EQ(c.activation, "gelu_new");
  EXPECT_TRUE(c.tie_word_embeddings);  // absent: the GPT-2 default
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.torch_dtype, "");
  EXPECT_EQ(c.bos_token_id, 50256);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{50256});
  EXPECT_TRUE(c.attnlab.is_null());
}

TEST(HfConfig, ParsesQwen25_05B) {
  ModelConfig c = parse_hf_config(kQwen25_05B, "qwen2.5-0.5b/config.json");
  EXPECT_EQ(c.arch, ModelArch::qwen2);
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.num_heads, 14);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 64);  // derived: 896 / 14
  EXPECT_EQ(c.intermediate_size, 4864);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.activation, "silu");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);  // implied by Qwen2
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{151643});
}

TEST(HfConfig, ParsesQwen3_06B) {
  ModelConfig c = parse_hf_config(kQwen3_06B, "qwen3-0.6b/config.json");
  EXPECT_EQ(c.arch, ModelArch::qwen3);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.num_layers, 28);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // Hq * d = 2048 != D
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_EQ(c.norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.qk_norm);  // implied by Qwen3
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{151645});
}

TEST(HfConfig, RoundTripKeepsEveryKeyAndItsOrder) {
  ScratchDir dir;
  const std::string with_extension = edited(kQwen3_06B, [](ojson& j) {
    j["attnlab"] = ojson::parse(R"({"attention": {"variant": "differential", "lambda_init": 0.8}})");
    j["some_future_key"] = ojson::parse(R"({"nested": [1, 2.5, "x", null]})");
  });
  for (const std::string& text : {std::string(kGpt2), std::string(kQwen25_05B), std::string(kQwen3_06B), with_extension}) {
    const std::string path = dir.file("config.json");
    ModelConfig c = parse_hf_config(text, "in-memory");
    save_hf_config(path, c);
    const auto bytes = read_bytes(path);
    // Same keys, same order, same values and number spellings (1000000 vs 1000000.0).
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), ojson::parse(text).dump(2) + "\n");
    expect_same_fields(load_hf_config(path), c);
  }
  ModelConfig c = parse_hf_config(with_extension, "ext");
  EXPECT_EQ(c.attnlab["attention"]["variant"], "differential");
  EXPECT_EQ(c.attnlab["attention"]["lambda_init"], 0.8);
}

TEST(HfConfig, EditedFieldsAreWrittenBackAndUnknownKeysKept) {
  ScratchDir dir;
  ModelConfig c = parse_hf_config(kQwen3_06B, "qwen3");
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 96;
  c.vocab_size = 512;
  c.rope_theta = 10000;
  c.tie_word_embeddings = false;
  c.eos_token_ids = {151645, 151643};
  c.attnlab = ojson::parse(R"({"attention": {"variant": "linear"}})");
  const std::string path = dir.file("config.json");
  save_hf_config(path, c);
  ModelConfig back = load_hf_config(path);
  expect_same_fields(back, c);
  // Keys attnlab does not model are still there, in their original order, new ones appended.
  std::vector<std::string> original_keys, saved_keys;
  const ojson original = ojson::parse(kQwen3_06B);
  for (auto it = original.begin(); it != original.end(); ++it) original_keys.push_back(it.key());
  for (auto& [k, v] : back.raw.items()) saved_keys.push_back(k);
  ASSERT_EQ(saved_keys.size(), original_keys.size() + 1);
  EXPECT_TRUE(std::equal(original_keys.begin(), original_keys.end(), saved_keys.begin()));
  EXPECT_EQ(saved_keys.back(), "attnlab");
  EXPECT_EQ(back.raw["transformers_version"], "4.51.0");
  EXPECT_TRUE(back.raw["sliding_window"].is_null());

  // GPT-2: n_inner stays absent while it is 4·D, and is written once it is not.
  ModelConfig g = parse_hf_config(kGpt2, "gpt2");
  g.hidden_size = 96;
  g.head_dim = 8;
  g.intermediate_size = 4 * 96;
  EXPECT_FALSE(hf_config_json(g).contains("n_inner"));
  g.intermediate_size = 200;
  EXPECT_EQ(hf_config_json(g)["n_inner"], 200);
  EXPECT_EQ(hf_config_json(g)["n_embd"], 96);
}

TEST(HfConfig, ConfigBuiltInCodeSavesWhatTransformersNeeds) {
  ScratchDir dir;
  ModelConfig c = model_config_defaults(ModelArch::qwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.tie_word_embeddings);
  c.hidden_size = 48;
  c.num_layers = 3;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 80;
  c.vocab_size = 301;
  c.max_position_embeddings = 128;
  c.norm_eps = 1e-6;
  c.rope_theta = 1e6;
  c.activation = "silu";
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.torch_dtype = "float32";
  c.eos_token_ids = {7};
  const std::string path = dir.file("config.json");
  save_hf_config(path, c);
  ModelConfig back = load_hf_config(path);
  expect_same_fields(back, c);
  EXPECT_EQ(back.raw["architectures"], ojson::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(back.raw["model_type"], "qwen2");
  EXPECT_FALSE(back.raw.contains("head_dim"));  // implied by 48 / 6
  EXPECT_EQ(back.raw["eos_token_id"], 7);

  c.qk_norm = true;  // Qwen2 has no q/k norm: saving it would silently drop it
  EXPECT_THROW(hf_config_json(c), Error);

  // Qwen3 from defaults: q/k norm implied, no biases, head_dim always written.
  ModelConfig q3 = model_config_defaults(ModelArch::qwen3);
  q3.hidden_size = 32;
  q3.num_layers = 2;
  q3.num_heads = 4;
  q3.num_kv_heads = 2;
  q3.head_dim = 16;
  q3.intermediate_size = 40;
  q3.vocab_size = 97;
  q3.max_position_embeddings = 64;
  save_hf_config(path, q3);
  ModelConfig q3back = load_hf_config(path);
  expect_same_fields(q3back, q3);
  EXPECT_TRUE(q3back.qk_norm);
  EXPECT_FALSE(q3back.attention_bias);
  EXPECT_EQ(q3back.raw["head_dim"], 16);
  EXPECT_EQ(q3back.raw["architectures"], ojson::array({"Qwen3ForCausalLM"}));
}

TEST(HfConfig, MissingKeysAreListedTogether) {
  const std::string text = edited(kQwen25_05B, [](ojson& j) {
    j.erase("hidden_size");
    j.erase("num_key_value_heads");
    j.erase("rope_theta");
  });
  std::string msg = error_of([&] { parse_hf_config(text, "models/qwen/config.json"); });
  expect_contains(msg, "models/qwen/config.json");
  expect_contains(msg, "missing keys: hidden_size, num_key_value_heads, rope_theta;");
  expect_contains(msg, "Fix:");

  msg = error_of([&] { parse_hf_config(edited(kGpt2, [](ojson& j) { j.erase("n_embd"); j.erase("n_head"); }), "g.json"); });
  expect_contains(msg, "missing keys: n_embd, n_head;");
  msg = error_of([&] { parse_hf_config(edited(kQwen3_06B, [](ojson& j) { j.erase("head_dim"); }), "q3.json"); });
  expect_contains(msg, "missing keys: head_dim;");
}

TEST(HfConfig, WrongTypesAreListedTogether) {
  const std::string text = edited(kQwen25_05B, [](ojson& j) {
    j["hidden_size"] = "896";
    j["tie_word_embeddings"] = "yes";
    j["rope_theta"] = ojson::array({1});
    j["num_hidden_layers"] = 24.5;
  });
  const std::string msg = error_of([&] { parse_hf_config(text, "c.json"); });
  expect_contains(msg, "hidden_size (string, expected an integer)");
  expect_contains(msg, "num_hidden_layers (number, expected an integer)");
  expect_contains(msg, "rope_theta (array, expected a number)");
  expect_contains(msg, "tie_word_embeddings (string, expected true or false)");
}

TEST(HfConfig, RefusesUnknownModelTypeAndBadFiles) {
  std::string msg = error_of([] { parse_hf_config(edited(kQwen25_05B, [](ojson& j) { j["model_type"] = "llama"; }), "l.json"); });
  expect_contains(msg, "l.json");
  expect_contains(msg, "unknown model_type 'llama'");
  expect_contains(msg, "gpt2, qwen2 (Qwen2 and Qwen2.5), qwen3");
  msg = error_of([] { parse_hf_config(edited(kGpt2, [](ojson& j) { j.erase("model_type"); }), "m.json"); });
  expect_contains(msg, "model_type is missing");
  msg = error_of([] { parse_hf_config("{\"model_type\": \"gpt2\",", "broken.json"); });
  expect_contains(msg, "broken.json");
  expect_contains(msg, "not valid JSON");
  msg = error_of([] { parse_hf_config("[1, 2]", "array.json"); });
  expect_contains(msg, "expected an object");
  ScratchDir dir;
  msg = error_of([&] { load_hf_config(dir.file("absent.json")); });
  expect_contains(msg, "absent.json");
}

TEST(HfConfig, RefusesSettingsAttnlabDoesNotImplementAndInvalidSizes) {
  std::string msg = error_of([] {
    parse_hf_config(edited(kQwen25_05B, [](ojson& j) {
                      j["rope_scaling"] = ojson::parse(R"({"type": "yarn", "factor": 4.0})");
                      j["use_sliding_window"] = true;
                    }),
                    "s.json");
  });
  expect_contains(msg, "rope_scaling");
  expect_contains(msg, "use_sliding_window = true");
  msg = error_of([] { parse_hf_config(edited(kQwen25_05B, [](ojson& j) { j["num_key_value_heads"] = 3; }), "g.json"); });
  expect_contains(msg, "attention heads 14 is not a multiple of key/value heads 3");
  msg = error_of([] { parse_hf_config(edited(kGpt2, [](ojson& j) { j["n_head"] = 7; j["n_layer"] = 0; }), "g2.json"); });
  expect_contains(msg, "layers = 0 (must be positive)");
  expect_contains(msg, "hidden size 768 is not a multiple of attention heads 7");
  msg = error_of([] { parse_hf_config(edited(kGpt2, [](ojson& j) { j["attnlab"] = "fast"; }), "a.json"); });
  expect_contains(msg, "attnlab (string, expected an object)");
}

// transformers >= 5 writes rope_parameters {rope_type, rope_theta} instead of a top-level rope_theta.
TEST(HfConfig, ReadsAndWritesTransformers5RopeParameters) {
  const std::string v5 = edited(kQwen25_05B, [](ojson& j) {
    j.erase("rope_theta");
    j.erase("rope_scaling");
    j["rope_parameters"] = ojson::parse(R"({"rope_type": "default", "rope_theta": 250000.0})");
  });
  ModelConfig c = parse_hf_config(v5, "v5.json");
  EXPECT_EQ(c.rope_theta, 250000.0);
  c.rope_theta = 5e5;
  const ojson out = hf_config_json(c);
  EXPECT_FALSE(out.contains("rope_theta"));
  EXPECT_EQ(out["rope_parameters"]["rope_theta"].get<double>(), 5e5);
  EXPECT_EQ(parse_hf_config(out.dump(), "again.json").rope_theta, 5e5);

  std::string msg = error_of([&] {
    parse_hf_config(edited(v5.c_str(), [](ojson& j) { j["rope_parameters"]["rope_type"] = "yarn"; }), "y.json");
  });
  expect_contains(msg, "rope_parameters with rope_type 'yarn'");
  msg = error_of([&] {
    parse_hf_config(edited(v5.c_str(), [](ojson& j) { j["rope_parameters"].erase("rope_theta"); }), "m.json");
  });
  expect_contains(msg, "rope_parameters.rope_theta");
  // A v4 file that names the default rope_type in rope_scaling is plain RoPE too.
  EXPECT_EQ(parse_hf_config(edited(kQwen25_05B, [](ojson& j) {
                              j["rope_scaling"] = ojson::parse(R"({"rope_type": "default"})");
                            }),
                            "d.json")
                .rope_theta,
            1e6);
}

TEST(HfConfig, EosListRoundTrips) {
  ScratchDir dir;
  const std::string text = edited(kQwen25_05B, [](ojson& j) { j["eos_token_id"] = ojson::array({151645, 151643}); });
  ModelConfig c = parse_hf_config(text, "eos");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_EQ(hf_config_json(c).dump(), ojson::parse(text).dump());
  c.eos_token_ids = {151645};  // one id, from a file that held a list: written back bare
  EXPECT_EQ(hf_config_json(c)["eos_token_id"], 151645);
  c.eos_token_ids.clear();
  EXPECT_TRUE(hf_config_json(c)["eos_token_id"].is_null());
}

}  // namespace attnlab::test
