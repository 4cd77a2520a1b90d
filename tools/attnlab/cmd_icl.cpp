// attnlab icl select | finetune-eval | simaou | simam | kendall | run | dual-form-check FILE
// [--field value ...] [key=value ...]: the ICL-vs-KV-only-fine-tuning study of seed 001 (METHODS §2;
// studies/icl/icl_study.h). FILE is an experiment file with task kv_only (the FT recipe) and
// `analysis: {study: icl, ...}`; every analysis field is also an option (the study's one field
// table), and key=value overrides any section (model.from=..., optim.lr=...).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <algorithm>
#include <deque>
#include <functional>

#include "core/config/diagnostics.h"
#include "core/config/field.h"
#include "core/config/registry.h"
#include "core/config/suggest.h"
#include "core/dtype.h"
#include "studies/icl/icl_run.h"
#include "studies/icl/icl_study.h"
#include "studies/study_command.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
namespace {

struct FieldOption {
  std::string leaf;  // analysis.<leaf>
  bool boolean = false;
  bool flag_value = false;
  std::string text;
  CLI::Option* option = nullptr;
};

struct IclArgs {
  std::vector<std::string> args;  // FILE then key=value
  std::string device = "cpu";
  std::string dtype = "f32";
  int64_t layer = 0;
  std::deque<FieldOption> fields;
  studies::FieldTable table;
};

std::vector<std::string> overrides_of(const IclArgs& a) {
  std::vector<std::string> o(a.args.begin() + 1, a.args.end());
  for (const std::string& s : o)
    ARG_CHECK(s.find('=') != std::string::npos, "icl: '", s, "' is not key=value (the experiment file comes first, once)");
  for (const FieldOption& f : a.fields) {
    if (!f.option || f.option->count() == 0) continue;
    o.push_back("analysis." + f.leaf + "=" + (f.boolean ? (f.flag_value ? "true" : "false") : f.text));
  }
  return o;
}

Device device_of(const IclArgs& a) {
  ARG_CHECK(a.device == "cpu" || a.device == "cuda", "icl: --device is cpu or cuda, got '", a.device, "'");
  return a.device == "cuda" ? Device::cuda : Device::cpu;
}

DType dtype_of(const IclArgs& a) {
  ARG_CHECK(a.dtype == "f32" || a.dtype == "f64" || a.dtype == "bf16", "icl: --dtype is f32, f64 (CPU) or bf16 (CUDA)");
  return dtype_from_name(a.dtype);
}

// The file and the options loaded once before any work: problems are printed like `attnlab train`
// prints them (FILE:LINE:COLUMN or "command line: key=value") and end with status 2.
void validate(const IclArgs& a) {
  try {
    icl::load_icl_experiment(a.args.at(0), overrides_of(a));
  } catch (const config::ConfigError& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "%s\n", p.text().c_str());
    std::fprintf(stderr, "attnlab: %zu problem%s in %s; `attnlab config fields analysis` lists the study's fields\n",
                 e.problems().size(), e.problems().size() == 1 ? "" : "s", a.args.at(0).c_str());
    exit_with(kExitBadInput);
  }
}

CLI::App* add(CLI::App& icl, const std::string& name, const std::string& what, const std::string& footer,
              std::function<void(const IclArgs&)> fn) {
  auto a = std::make_shared<IclArgs>();
  a->table = icl::icl_fields();
  CLI::App* c = icl.add_subcommand(name, what);
  c->footer(footer);
  c->add_option("args", a->args, "the experiment file (experiments/icl/sst2.yaml), then key=value overrides")
      ->required()
      ->expected(1, -1);
  c->add_option("--device", a->device, "cpu (default) or cuda");
  c->add_option("--dtype", a->dtype, "f32 (default), f64 (CPU) or bf16 (CUDA)");
  if (name == "dual-form-check") c->add_option("--layer", a->layer, "layer whose projections are checked (default 0)");
  for (const config::FieldSpec& f : a->table.fields) {
    const std::string flag = studies::option_flag(f);
    if (flag.empty()) continue;
    FieldOption& o = a->fields.emplace_back();
    o.leaf = config::leaf_name(f.path);
    std::string help = f.doc;
    if (f.type == config::FieldType::enumeration) help += " {" + config::join_words(f.choices, ",") + "}";
    if (f.type != config::FieldType::boolean && f.presence == config::Presence::defaulted)
      help += " (default " + config::format_value(f.default_value) + ")";
    if (f.type == config::FieldType::boolean) {
      o.boolean = true;
      o.option = c->add_flag(flag, o.flag_value, help + " (YAML: analysis." + o.leaf + ")");
    } else {
      o.option = c->add_option(flag, o.text, help + " (YAML: analysis." + o.leaf + ")");
    }
  }
  c->callback([a, fn] {
    validate(*a);
    fn(*a);
  });
  return c;
}

icl::RunParts parts(bool accuracy, bool simaou, bool simam, bool kendall, bool finetune) {
  icl::RunParts p;
  p.accuracy = accuracy;
  p.simaou = simaou;
  p.simam = simam;
  p.kendall = kendall;
  p.finetune = finetune;
  return p;
}

void run_parts(const IclArgs& a, const icl::RunParts& p) {
  icl::run_icl(a.args.at(0), overrides_of(a), p, device_of(a), dtype_of(a), stdout);
}

void setup(CLI::App& root) {
  auto* icl = root.add_subcommand("icl", "Study: in-context learning vs KV-only fine-tuning (Rec2FTP, SimAOU, SimAM, Kendall)");
  icl->require_subcommand(1);
  icl->footer(
      "METHODS §2 (Dai et al. 2022 on Qwen3). One experiment file drives every command: its kv_only sections are\n"
      "the fine-tuning, its `analysis: {study: icl}` section the study (every field is also an option here).\n"
      "Outputs under analysis.out: icl_<dataset>_seed<S>.json (per-layer arrays, METHODS 2.11 keys),\n"
      "icl_<dataset>_seed<S>_captures.safetensors (the raw captured vectors) and figures/*.png.");
  const std::string standin =
      "Stand-in inputs first (see the header of experiments/icl/sst2.yaml):\n"
      "  attnlab init --arch qwen3 --tiny --out runs/inputs/qwen3-tiny --force\n"
      "  attnlab data synth sst2 --n 64 --seed 1 --out runs/inputs/icl/sst2-train.tsv\n"
      "  attnlab data synth sst2 --n 16 --seed 2 --out runs/inputs/icl/sst2-validation.tsv\n";
  add(*icl, "select", "Demonstration selection: the seed whose random.sample(range(N), k) gives the best ICL accuracy",
      "For seed in 0..seed_max-1: random.seed(seed); random.sample(range(N_train), k) (CPython-exact), ICL accuracy\n"
      "on the validation rows; prints 'Best seed' and writes OUT/select_<dataset>.json.\n" + standin +
      "Example:\n  attnlab icl select experiments/icl/sst2.yaml --k 4 --seed-max 3 --out /tmp/icl",
      [](const IclArgs& a) { icl::run_select(a.args.at(0), overrides_of(a), device_of(a), dtype_of(a), stdout); });
  add(*icl, "finetune-eval", "ZSL, ICL and KV-only-FT accuracies, correct-index sets, Rec2FTP and the original Rec2FT",
      "Predicts ZSL and ICL before FT, fine-tunes k_proj/v_proj only on the k demonstrations (the file's HF-Trainer\n"
      "recipe, or --ft-paper), predicts ZSL prompts after FT. --label-scoring: the paper's first-token label scoring.\n"
      "Example:\n  attnlab icl finetune-eval experiments/icl/sst2.yaml --k 4 --out /tmp/icl",
      [](const IclArgs& a) { run_parts(a, parts(true, false, false, false, true)); });
  add(*icl, "simaou", "SimAOU per layer (hidden states or attention outputs at the last token) with its random baseline",
      "cos(h_ICL - h_ZSL, h_FT - h_ZSL) of L2-normalised last-token vectors, per layer; --simaou-source attn_out for\n"
      "the paper's attention outputs; --include-embedding-layer for the original's mean over all L+1 states.\n"
      "Example:\n  attnlab icl simaou experiments/icl/sst2.yaml --k 4 --simaou-source attn_out --out /tmp/icl",
      [](const IclArgs& a) { run_parts(a, parts(false, true, false, false, true)); });
  add(*icl, "simam", "SimAM per layer: the last query's pre-softmax scores, FT vs ICL and before-FT vs ICL",
      "Example:\n  attnlab icl simam experiments/icl/sst2.yaml --k 4 --out /tmp/icl",
      [](const IclArgs& a) { run_parts(a, parts(false, false, true, false, true)); });
  add(*icl, "kendall", "Kendall's tau-b per layer: ICL attention to the demonstrations vs q_proj inner products",
      "ORIGINAL: head-summed post-softmax probabilities of the last token on the first Ld keys vs Qd q_test;\n"
      "--kendall-paper: the paper's softmaxed maps, token/example level, top-k recall. No fine-tuning needed.\n"
      "Example:\n  attnlab icl kendall experiments/icl/sst2.yaml --k 4 --out /tmp/icl",
      [](const IclArgs& a) { run_parts(a, parts(false, false, false, true, false)); });
  add(*icl, "run", "The whole protocol: accuracies, Rec2FTP, SimAOU, SimAM, Kendall, JSON + safetensors + figures",
      standin +
      "Examples:\n"
      "  attnlab icl run experiments/icl/sst2.yaml --k 4 --out /tmp/icl\n"
      "  attnlab icl run experiments/icl/sst5.yaml --k 5 --label-scoring --kendall-paper --out /tmp/icl5",
      [](const IclArgs& a) { run_parts(a, parts(true, true, true, true, true)); });
  add(*icl, "dual-form-check", "The relaxed-linear-attention dual-form identity (METHODS 2.2) on the model's projections",
      "F(q) = W_V[X';X](W_K[X';X])^T q equals W_ZSL q + dW_ICL q with the matrices built explicitly, in double, with\n"
      "X' the context's attention inputs and X the first validation query's. Exit status 1 when the relative\n"
      "difference exceeds 1e-10.\n"
      "Example:\n  attnlab icl dual-form-check experiments/icl/sst2.yaml --k 4 --layer 1",
      [](const IclArgs& a) {
        const icl::DualFormReport r =
            icl::run_dual_form_check(a.args.at(0), overrides_of(a), a.layer, device_of(a), dtype_of(a));
        const double rel = r.max_abs_diff / std::max(r.max_abs, 1e-300);
        std::printf("dual form, layer %lld: %lld demonstration tokens, %lld query tokens; max |F(q) - (W_ZSL + dW_ICL) q| = "
                    "%.3g (max |F(q)| = %.3g, relative %.3g): %s\n",
                    (long long)r.layer, (long long)r.demo_tokens, (long long)r.query_tokens, r.max_abs_diff, r.max_abs,
                    rel, rel <= 1e-10 ? "holds" : "FAILS");
        if (rel > 1e-10) exit_with(kExitFailure);
      });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
