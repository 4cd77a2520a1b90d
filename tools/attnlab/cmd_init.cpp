// attnlab init --arch gpt2|qwen2|qwen3 [--tiny] --out DIR [key=value ...]: a randomly initialised
// HF checkpoint (config.json + model.safetensors) that transformers and attnlab both open.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "core/io/hf_config.h"
#include "core/models/weights.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct InitOptions {
  std::string arch;
  bool tiny = false;
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "f32";
  bool force = false;
  std::vector<std::string> overrides;
};

// config.json of the reference checkpoints: gpt2 (124M), Qwen2.5-0.5B, Qwen3-0.6B-Base.
ojson base_config(const std::string& arch) {
  if (arch == "gpt2")
    return ojson{{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"activation_function", "gelu_new"},
                 {"attn_pdrop", 0.1}, {"embd_pdrop", 0.1}, {"resid_pdrop", 0.1}, {"initializer_range", 0.02},
                 {"layer_norm_epsilon", 1e-5}, {"n_embd", 768}, {"n_head", 12}, {"n_layer", 12},
                 {"n_positions", 1024}, {"n_ctx", 1024}, {"n_inner", nullptr}, {"vocab_size", 50257},
                 {"bos_token_id", 50256}, {"eos_token_id", 50256}, {"tie_word_embeddings", true}};
  ojson q{{"architectures", {arch == "qwen2" ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM"}},
          {"model_type", arch}, {"hidden_act", "silu"}, {"attention_dropout", 0.0}, {"initializer_range", 0.02},
          {"rms_norm_eps", 1e-6}, {"rope_theta", 1000000.0}, {"use_sliding_window", false},
          {"vocab_size", 151936}, {"bos_token_id", 151643}, {"eos_token_id", 151643}, {"tie_word_embeddings", true}};
  if (arch == "qwen2") {
    q["hidden_size"] = 896;
    q["intermediate_size"] = 4864;
    q["num_hidden_layers"] = 24;
    q["num_attention_heads"] = 14;
    q["num_key_value_heads"] = 2;
    q["max_position_embeddings"] = 32768;
  } else {
    q["hidden_size"] = 1024;
    q["intermediate_size"] = 3072;
    q["num_hidden_layers"] = 28;
    q["num_attention_heads"] = 16;
    q["num_key_value_heads"] = 8;
    q["head_dim"] = 128;
    q["attention_bias"] = false;
    q["max_position_embeddings"] = 32768;
  }
  return q;
}

// Two layers of width 64, four heads of 16 (two kv heads for Qwen); the real vocabulary, so the
// real tokenizers work with it.
void make_tiny(ojson& c, const std::string& arch) {
  if (arch == "gpt2") {
    c["n_embd"] = 64;
    c["n_head"] = 4;
    c["n_layer"] = 2;
    return;
  }
  c["hidden_size"] = 64;
  c["intermediate_size"] = 128;
  c["num_hidden_layers"] = 2;
  c["num_attention_heads"] = 4;
  c["num_key_value_heads"] = 2;
  c["max_position_embeddings"] = 4096;
  if (arch == "qwen3") c["head_dim"] = 16;
}

// key=value: the value as JSON when it parses (numbers, true/false, null, "quoted", {...}), else as
// a string; dots in the key reach into objects (attnlab.attention.variant=standard).
void apply_override(ojson& c, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    FAIL_WITH("init: override '", kv, "' is not key=value (e.g. num_hidden_layers=4, tie_word_embeddings=false)");
  const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  ojson value = ojson::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;
  ojson* node = &c;
  size_t start = 0;
  for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    ojson& next = (*node)[key.substr(start, dot - start)];
    if (next.is_null()) next = ojson::object();
    if (!next.is_object()) FAIL_WITH("init: override '", kv, "': '", key.substr(0, dot), "' is not an object");
    node = &next;
  }
  (*node)[key.substr(start)] = value;
}

void run_init(const InitOptions& o) {
  if (o.arch != "gpt2" && o.arch != "qwen2" && o.arch != "qwen3")
    FAIL_WITH("init: --arch must be gpt2, qwen2 or qwen3, got '", o.arch, "'");
  const DType file_dtype = dtype_from_name(o.dtype);
  ARG_CHECK(file_dtype == DType::f32 || file_dtype == DType::bf16, "init: --dtype is f32 or bf16, got ", o.dtype);
  const std::filesystem::path out(o.out);
  for (const char* f : {"model.safetensors", "config.json", "model.safetensors.index.json"})
    if (std::filesystem::exists(out / f) && !o.force)
      FAIL_WITH("init: '", (out / f).string(), "' exists; pass --force to overwrite, or choose another --out");
  if (o.force) std::filesystem::remove(out / "model.safetensors.index.json");

  ojson json = base_config(o.arch);
  if (o.tiny) make_tiny(json, o.arch);
  for (const auto& kv : o.overrides) apply_override(json, kv);
  // The same parser as for downloaded checkpoints: bad overrides get the same messages.
  ModelConfig config = parse_hf_config(json.dump(), "attnlab init --arch " + o.arch + " (with overrides)");

  Ctx ctx = Ctx::make_cpu(o.seed);
  Model model(config, {Device::cpu, DType::f32, /*allocate_grads=*/false}, ctx);
  init_weights(model, ctx, o.seed);
  save_model(model, ctx, o.out, file_dtype);
  std::printf("%s: %s with %lld parameters (L=%lld, D=%lld, heads %lld/%lld x %lld, V=%lld), seed %llu, %s\n",
              o.out.c_str(), model_type_name(config.arch), (long long)model.params().total_numel(),
              (long long)config.num_layers, (long long)config.hidden_size, (long long)config.num_heads,
              (long long)config.num_kv_heads, (long long)config.head_dim, (long long)config.vocab_size,
              (unsigned long long)o.seed, torch_dtype_name(file_dtype));
}

void setup(CLI::App& root) {
  auto o = std::make_shared<InitOptions>();
  auto* c = root.add_subcommand("init", "Write a randomly initialised HF checkpoint (config.json + model.safetensors)");
  c->footer(
      "Without --tiny the sizes are those of gpt2 (124M), Qwen2.5-0.5B (qwen2) and Qwen3-0.6B (qwen3). --tiny\n"
      "gives 2 layers of width 64 with 4 heads (2 key/value heads for Qwen) and the real vocabulary, so the\n"
      "real tokenizers work with it. key=value sets any config.json field (HF names; values are JSON when\n"
      "they parse, else strings; dots reach into objects). Weights follow HF's initialisation: N(0, 0.02²)\n"
      "matrices and embeddings (GPT-2's c_proj scaled by 1/sqrt(2L)), norm weights 1, biases 0.\n"
      "Examples:\n"
      "  attnlab init --arch qwen3 --tiny --out /tmp/qwen3-tiny\n"
      "  attnlab init --arch qwen2 --tiny --out /tmp/q2 num_hidden_layers=4 tie_word_embeddings=false\n"
      "  attnlab init --arch gpt2 --out /tmp/gpt2-random --seed 7 --dtype bf16");
  c->add_option("--arch", o->arch, "gpt2, qwen2 (Qwen2 and Qwen2.5) or qwen3")->required();
  c->add_flag("--tiny", o->tiny, "2 layers of width 64 (tests, smoke runs)");
  c->add_option("--out", o->out, "folder to write (created if missing)")->required();
  c->add_option("--seed", o->seed, "random seed (default 0): the same seed gives the same weights");
  c->add_option("--dtype", o->dtype, "dtype of the saved tensors: f32 (default) or bf16");
  c->add_flag("--force", o->force, "overwrite a checkpoint already in --out");
  c->add_option("overrides", o->overrides, "config.json fields to set, as key=value");
  c->callback([o] { run_init(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
