// attnlab init --arch gpt2|qwen2|qwen3 [--tiny] --out DIR [key=value ...]: a randomly initialised
// HF checkpoint (config.json + model.safetensors) that transformers and attnlab both open.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "core/io/hf_config.h"
#include "core/config/attention_options.h"
#include "core/io/reference_configs.h"
#include "core/models/weights.h"
#include "data/tokenizer_files.h"
#include "tools/attnlab/cli_options.h"
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
  std::string tokenizer;  // "" = the architecture's (gpt2, qwen2.5, qwen3); "none" = no tokenizer files
  std::vector<std::string> overrides;
};

// The tokenizer a reference architecture ships with.
std::string default_tokenizer(const std::string& arch) {
  return arch == "gpt2" ? "gpt2" : arch == "qwen2" ? "qwen2.5" : "qwen3";
}

// The attnlab.attention.* keys, from the option table (for --help).
std::string attention_keys_help() {
  std::string s;
  for (const AttentionOptionDecl& d : attention_option_decls()) {
    if (!d.user_facing) continue;
    std::string values;
    for (const auto& c : d.choices) values += (values.empty() ? "" : "|") + c;
    if (values.empty()) values = "number";
    s += "  attnlab.attention." + d.name + "=" + values + "\n      " + d.doc + "\n";
  }
  return s;
}

// key=value: the value as JSON when it parses (numbers, true/false, null, "quoted", {...}), else as
// a string; dots in the key reach into objects (attnlab.attention.variant=standard).
void apply_override(ojson& c, const std::string& arch, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    FAIL_WITH("init: override '", kv, "' is not key=value (e.g. num_hidden_layers=4, tie_word_embeddings=false)");
  const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  if (const std::string why = config_override_problem(arch, key); !why.empty())
    FAIL_WITH("init: override '", kv, "': ", why);
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
  const DType file_dtype = parse_dtype_option("init", o.dtype, {DType::f32, DType::bf16});
  const std::filesystem::path out(o.out);
  for (const char* f : {"model.safetensors", "config.json", "model.safetensors.index.json"})
    if (std::filesystem::exists(out / f) && !o.force)
      FAIL_WITH("init: '", (out / f).string(), "' exists; pass --force to overwrite, or choose another --out");
  if (o.force) std::filesystem::remove(out / "model.safetensors.index.json");

  ojson json = reference_config_json(o.arch);
  if (o.tiny) make_tiny_config(json, o.arch);
  for (const auto& kv : o.overrides) apply_override(json, o.arch, kv);
  // The same parser as for downloaded checkpoints: bad overrides get the same messages.
  ModelConfig config = parse_hf_config(json.dump(), "attnlab init --arch " + o.arch + " (with overrides)");

  Ctx ctx = Ctx::make_cpu(o.seed);
  Model model(config, {Device::cpu, DType::f32, /*allocate_grads=*/false}, ctx);
  init_weights(model, ctx, o.seed);
  save_model(model, ctx, o.out, file_dtype);
  // The tokenizer travels with the folder, so generate/forward need no --tokenizer.
  std::string tokenizer_note = "no tokenizer files";
  const std::string tok = o.tokenizer.empty() ? default_tokenizer(o.arch) : o.tokenizer;
  if (tok != "none") {
    try {
      data::write_tokenizer_files(tok, o.out);
      tokenizer_note = "tokenizer " + tok;
    } catch (const Error& e) {
      if (!o.tokenizer.empty()) throw;  // asked for explicitly: a real error
      tokenizer_note = "no tokenizer files (" + tok + " is not in the asset cache: run `attnlab assets fetch`)";
    }
  }
  std::printf("%s: %s with %lld parameters (L=%lld, D=%lld, heads %lld/%lld x %lld, V=%lld), seed %llu, %s, %s\n",
              o.out.c_str(), model_type_name(config.arch), (long long)model.params().total_numel(),
              (long long)config.num_layers, (long long)config.hidden_size, (long long)config.num_heads,
              (long long)config.num_kv_heads, (long long)config.head_dim, (long long)config.vocab_size,
              (unsigned long long)o.seed, torch_dtype_name(file_dtype), tokenizer_note.c_str());
}

void setup(CLI::App& root) {
  auto o = std::make_shared<InitOptions>();
  auto* c = root.add_subcommand("init", "Write a randomly initialised HF checkpoint (config.json + model.safetensors)");
  c->footer(
      "Without --tiny the sizes are those of gpt2 (124M), Qwen2.5-0.5B (qwen2) and Qwen3-0.6B (qwen3). --tiny\n"
      "gives 2 layers of width 64 with 4 heads (2 key/value heads for Qwen) and the real vocabulary, so the\n"
      "real tokenizers work with it. key=value sets any config.json field (HF names; values are JSON when\n"
      "they parse, else strings; dots reach into objects). Weights follow HF's initialisation: N(0, 0.02²)\n"
      "matrices and embeddings (GPT-2's c_proj scaled by 1/sqrt(2L)), norm weights 1, biases 0. A key the\n"
      "architecture does not have is refused (with the nearest one). The folder gets the architecture's\n"
      "tokenizer files when the asset cache holds them (attnlab assets fetch), so generate and forward need\n"
      "no --tokenizer.\n"
      "Attention settings (config.json's attnlab block; any model, pretrained folders too):\n" +
      attention_keys_help() +
      "Examples:\n"
      "  attnlab init --arch qwen3 --tiny --out /tmp/qwen3-tiny\n"
      "  attnlab init --arch qwen2 --tiny --out /tmp/q2 num_hidden_layers=4 tie_word_embeddings=false\n"
      "  attnlab init --arch gpt2 --out /tmp/gpt2-random --seed 7 --dtype bf16\n"
      "  attnlab init --arch gpt2 --tiny --out /tmp/gpt2-diff attnlab.attention.variant=differential");
  c->add_option("--arch", o->arch, "gpt2, qwen2 (Qwen2 and Qwen2.5) or qwen3")->required();
  c->add_flag("--tiny", o->tiny, "2 layers of width 64 (tests, smoke runs)");
  c->add_option("--out", o->out, "folder to write (created if missing)")->required();
  c->add_option("--seed", o->seed, "random seed (default 0): the same seed gives the same weights");
  c->add_option("--dtype", o->dtype, "dtype of the saved tensors: f32 (default) or bf16");
  c->add_flag("--force", o->force, "overwrite a checkpoint already in --out");
  c->add_option("--tokenizer", o->tokenizer,
                "tokenizer files to write into --out: gpt2, qwen2.5, qwen3, a tokenizer folder, or none "
                "(default: the architecture's, when the asset cache has it)");
  c->add_option("overrides", o->overrides, "config.json fields to set, as key=value");
  c->callback([o] { run_init(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
