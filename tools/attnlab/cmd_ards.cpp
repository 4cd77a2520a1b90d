// attnlab ards run --model DIR [--optimize | --linearize | --leramp | --monitor] [--prompts FILE]
// [--seed S] [--greedy] [--max-new-tokens N] [--sampling-rate R] [--out DIR]: the ARDS study
// (METHODS §4, studies/ards/ards.h): the three prompts of §4.7 (or one per line of FILE) under a
// mode, with per-layer diagnostics during generation, the console summary of §4.8, the response,
// JSON/CSV per prompt and the grid plots (tools/plot_ards.py).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/models/weights.h"
#include "data/chat_template.h"
#include "data/input_check.h"
#include "data/tokenizer.h"
#include "studies/ards/run.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

namespace fs = std::filesystem;

struct ArdsOptions {
  std::string model;
  bool optimize = false, linearize = false, leramp = false, monitor = false;
  bool linear_unmasked = false;
  std::string prompts;
  std::string tokenizer;
  uint64_t seed = 0;
  bool greedy = false;
  std::optional<int64_t> max_new_tokens;
  double sampling_rate = 0.1;
  std::string out = ".";
  std::string device = "cpu";
  std::string dtype = "auto";
  std::string plot_script = "tools/plot_ards.py";
  bool no_plots = false;
};

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream f(path);
  INPUT_CHECK(f.good(), "ards: cannot read --prompts '", path, "' (one prompt per line)");
  std::vector<std::string> p;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) p.push_back(line);
  }
  INPUT_CHECK(!p.empty(), "ards: --prompts '", path, "' has no prompts (one prompt per non-empty line)");
  return p;
}

void run_ards(const ArdsOptions& o) {
  const int modes = int(o.optimize) + int(o.linearize) + int(o.leramp) + int(o.monitor);
  INPUT_CHECK(modes <= 1, "ards run: --optimize, --linearize, --leramp and --monitor are mutually exclusive; pass one");
  INPUT_CHECK(o.sampling_rate >= 0 && o.sampling_rate <= 1, "ards run: --sampling-rate is in [0, 1], got ",
              o.sampling_rate);
  INPUT_CHECK(o.device == "cpu" || o.device == "cuda", "ards run: --device is cpu or cuda, got '", o.device, "'");
  using ards::Mode;
  const Mode mode = o.optimize ? Mode::optimize
                    : o.linearize ? Mode::linearize
                    : o.leramp    ? Mode::leramp
                    : o.monitor   ? Mode::monitor
                                  : Mode::baseline;
  INPUT_CHECK(!o.linear_unmasked || ards::takes_unmasked(mode),
              "ards run: --linear-unmasked changes which keys the linear / ramp normalisation sees; pass it with "
              "--linearize or --leramp");
  const Device dev = o.device == "cuda" ? Device::cuda : Device::cpu;
  const DType dt = o.dtype == "auto" ? (dev == Device::cuda ? DType::bf16 : DType::f32) : dtype_from_name(o.dtype);

  const std::string tok_source = o.tokenizer.empty() ? o.model : o.tokenizer;
  const data::Tokenizer tok = data::Tokenizer::load(tok_source);
  const std::optional<data::ChatFamily> family = data::chat_family_for_tokenizer(tok_source);
  INPUT_CHECK(family.has_value(), "ards run: no chat template known for tokenizer '", tok_source,
              "'; the study needs a Qwen2/2.5 (or Qwen3) chat tokenizer: pass --tokenizer qwen2.5");

  Ctx ctx = dev == Device::cuda ? Ctx::make_cuda(0, o.seed) : Ctx::make_cpu(o.seed);
  auto model = load_model(o.model, {dev, dt, false}, ctx, ards::attention_overrides(mode, o.linear_unmasked));
  const ModelConfig& mc = model->config();

  // §4.7: the model's generation config; max_new_tokens 4096 unless given; eos and <|im_end|> stop.
  GenerationConfig g;
  g.stop_tokens.assign(mc.eos_token_ids.begin(), mc.eos_token_ids.end());
  const fs::path gen_file = fs::path(o.model) / "generation_config.json";
  if (fs::exists(gen_file)) g = read_generation_config(gen_file.string(), g);
  g.max_new_tokens = o.max_new_tokens.value_or(4096);
  if (o.greedy) g.do_sample = false;
  if (auto end = tok.token_id("<|im_end|>")) g.stop_tokens.push_back(*end);

  const std::vector<std::string> prompts = o.prompts.empty() ? ards::default_prompts() : read_prompts(o.prompts);
  const std::string data_dir = (fs::path(o.out) / "diagnostics").string();
  std::vector<std::string> jsons;
  std::printf("ARDS mode: %s (%s%s), model %s, %lld layers, %s %s\n", ards::mode_title(mode), ards::mode_file_name(mode),
              o.linear_unmasked ? ", unmasked prefill" : "", o.model.c_str(), (long long)model->num_layers(),
              device_name(dev), dtype_name(dt));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t n = int64_t(i) + 1;
    data::ChatOptions copt;
    copt.add_generation_prompt = true;
    const std::vector<int32_t> ids = data::encode_chat(tok, *family, {{"user", prompts[i]}}, copt).ids;
    for (int32_t id : ids)
      INPUT_CHECK(id < mc.vocab_size, "ards run: the tokenizer gave id ", id, ", outside the model's vocabulary of ",
                  mc.vocab_size, " (is --tokenizer the model's?)");
    ards::PromptRun r = ards::run_prompt(*model, ctx, ids, g, mode, o.sampling_rate, o.seed + uint64_t(n), &tok);
    r.prompt = prompts[i];
    r.diagnostics.unmasked = o.linear_unmasked;
    std::printf("\n=== Prompt %lld: %s\n", (long long)n, prompts[i].c_str());
    if (ards::has_diagnostics(mode)) std::printf("%s", ards::console_summary(r.diagnostics).c_str());
    std::printf("Response: %s\n", r.generation.texts.empty() ? "" : r.generation.texts[0].c_str());
    std::printf("(%lld tokens in %.3f s; %lld forward calls)\n", (long long)r.generation.stats.new_tokens, r.seconds,
                (long long)(r.generation.stats.decode_steps + 1));
    jsons.push_back(ards::write_prompt_files(data_dir, n, r, g, o.model, o.seed, o.sampling_rate));
  }
  std::printf("\ndiagnostics: %s/prompt_<N>_%s.{json,csv}\n", data_dir.c_str(), ards::mode_file_name(mode));
  // §4.8: plots only when a mode is active.
  if (mode == Mode::baseline || o.no_plots) return;
  const std::string plots = (fs::path(o.out) / "plots").string();
  std::string cmd = "/usr/bin/python3 '" + o.plot_script + "' --out '" + plots + "'";
  for (const std::string& j : jsons) cmd += " '" + j + "'";
  if (!fs::exists(o.plot_script)) {
    std::printf("plots: %s not found here (run from the repository root, or pass --plot-script); draw them with\n  %s\n",
                o.plot_script.c_str(), cmd.c_str());
    return;
  }
  const int rc = std::system(cmd.c_str());
  if (rc != 0) std::printf("plots: the plot script failed (exit %d); rerun it by hand:\n  %s\n", rc, cmd.c_str());
}

void setup(CLI::App& root) {
  auto o = std::make_shared<ArdsOptions>();
  auto* ards = root.add_subcommand("ards", "Study: attention controllers and their diagnostics in generation (ARDS)");
  ards->require_subcommand(1);
  auto* c = ards->add_subcommand("run", "Generate for the study's prompts under one mode, with per-layer diagnostics");
  c->footer(
      "Modes (METHODS §4; at most one): none = baseline; --optimize = information-density controller\n"
      "(controller=info_density, zero-initialised); --linearize = linear normalisation (norm=linear);\n"
      "--leramp = per-layer ramp alpha_l = (L - l)/L (norm=ramp, ramp_schedule=by_layer); --monitor = the\n"
      "unmodified model with the diagnostics of its softmax. Diagnostics per layer per forward call (KL from\n"
      "softmax, entropy, variance; the controller's value) come from the attention op's row reductions;\n"
      "a seeded draw with --sampling-rate picks the sampled records. Masked keys: visible keys only, or with\n"
      "--linear-unmasked the original's literal prefill (the prompt's rows normalise over every prompt key,\n"
      "later ones included; METHODS §4.4).\n"
      "Writes OUT/diagnostics/prompt_<N>_<mode>.{json,csv} and, with a mode, OUT/plots/prompt_<N>_<mode>_grid.png\n"
      "(via /usr/bin/python3 tools/plot_ards.py, matplotlib).\n"
      "Examples:\n"
      "  attnlab ards run --model ./Qwen2.5-1.5B-Instruct --leramp --greedy --max-new-tokens 256 --device cuda\n"
      "  attnlab ards run --model ./qwen-tiny --tokenizer qwen2.5 --monitor --max-new-tokens 16 --out /tmp/ards\n"
      "  attnlab ards run --model ./qwen-tiny --tokenizer qwen2.5 --linearize --linear-unmasked --greedy --max-new-tokens 8 --out /tmp/ards-unmasked");
  c->add_option("--model", o->model, "HF Qwen2/2.5 (or Qwen3) model folder")->required();
  c->add_flag("--optimize", o->optimize, "information-density controller (METHODS §4.3)");
  c->add_flag("--linearize", o->linearize, "linear normalisation (§4.4)");
  c->add_flag("--leramp", o->leramp, "per-layer linear/softmax ramp (§4.5)");
  c->add_flag("--monitor", o->monitor, "unmodified model, diagnostics of its softmax");
  c->add_flag("--linear-unmasked", o->linear_unmasked,
              "with --linearize or --leramp: the original's literal prefill, every prompt key visible to every "
              "prompt row (norm_mask: unmasked; leaks the future, as the original does)");
  c->add_option("--prompts", o->prompts, "file with one prompt per line (default: the three prompts of §4.7)");
  c->add_option("--tokenizer", o->tokenizer, "qwen2.5, qwen3 (asset cache) or a tokenizer folder; default: the model's");
  c->add_option("--seed", o->seed, "seed of the token sampling and of the sampled records (default 0)");
  c->add_flag("--greedy", o->greedy, "greedy decoding (deterministic comparisons across modes)");
  c->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate at most per prompt (default 4096)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_option("--sampling-rate", o->sampling_rate, "probability that a (layer, call) becomes a sampled record (0.1)");
  c->add_option("--out", o->out, "output folder (default: the current folder)");
  c->add_option("--device", o->device, "cpu (default) or cuda");
  c->add_option("--dtype", o->dtype, "f32, bf16 (CUDA) or f64 (CPU); default bf16 on cuda, f32 on cpu");
  c->add_option("--plot-script", o->plot_script, "the plot script (default tools/plot_ards.py)");
  c->add_flag("--no-plots", o->no_plots, "write the JSON/CSV only");
  c->callback([o] { run_ards(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
