// attnlab analyze needle --ckpt A --ckpt B [--depths 0,0.25,0.5,0.75]: the answer-to-noise analysis
// of seed 002 (METHODS §3.6–§3.7) for scratch-decoder checkpoints, written as JSON (one file per
// checkpoint, the ORIGINAL keys) and one CSV of every checkpoint's per-depth numbers.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/analysis/needle_run.h"
#include "core/analysis/needle_study.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "tools/attnlab/cli_options.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

struct NeedleCliOptions {
  std::vector<std::string> ckpts;
  std::string tokenizer = "gpt2";
  std::string depths = "0,0.25,0.5,0.75";
  int64_t samples = 200;
  uint64_t seed = 0;
  int64_t context_length = 511;
  bool all_depths = false;
  bool seed_compat = false;
  int64_t layer = -1;
  std::string rows = "question";
  std::string out = "needle_analysis";
  std::string device = "cpu";
  std::string dtype = "f32";
};

std::vector<double> parse_depths(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    double d = 0;
    try {
      d = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    ARG_CHECK(used == item.size() && !item.empty(), "analyze needle: --depths takes numbers separated by commas, got '",
          text, "'");
    CHECK(d >= 0 && d < 1, "analyze needle: depth ", d, " is outside [0, 1)");
    out.push_back(d);
  }
  ARG_CHECK(!out.empty(), "analyze needle: --depths is empty");
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  CHECK(f.good(), "analyze needle: cannot write '", path, "'");
}

// The name a checkpoint's results are filed under: runs/<run>/checkpoints/best/model.safetensors
// -> <run>, runs/<run>/checkpoints/step_N/... -> <run>_step_N, any other file -> its stem; a name
// already taken gets _2, _3, ...
std::string result_name(const std::string& ckpt, std::vector<std::string>& taken) {
  namespace fs = std::filesystem;
  const fs::path p = fs::absolute(fs::path(ckpt)).lexically_normal();
  std::string name = p.stem().string();
  const fs::path folder = p.parent_path();  // best | step_N
  if (folder.parent_path().filename() == "checkpoints" && !folder.parent_path().parent_path().empty()) {
    name = folder.parent_path().parent_path().filename().string();
    if (folder.filename() != "best") name += "_" + folder.filename().string();
  }
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') ch = '_';
  std::string unique = name;
  for (int k = 2; std::find(taken.begin(), taken.end(), unique) != taken.end(); ++k) unique = name + "_" + std::to_string(k);
  taken.push_back(unique);
  return unique;
}

void run_needle(const NeedleCliOptions& o) {
  const DeviceDtype dd = parse_device_dtype("analyze needle", o.device, o.dtype);
  const Device dev = dd.device;
  const DType dt = dd.dtype;
  ARG_CHECK(o.rows == "question" || o.rows == "last", "analyze needle: --rows is question or last, got '", o.rows, "'");
  analysis::NeedleRunOptions opt;
  opt.contexts.depths = parse_depths(o.depths);
  opt.contexts.samples = o.samples;
  opt.contexts.seed = o.seed;
  opt.contexts.context_length = o.context_length;
  opt.contexts.all_depths = o.all_depths;
  opt.seed_compat = o.seed_compat;
  opt.layer = o.layer;
  opt.last_row_only = o.rows == "last";

  data::Tokenizer tok = data::Tokenizer::load(o.tokenizer);
  Ctx ctx = dev == Device::cuda ? Ctx::make_cuda(0, 0) : Ctx::make_cpu(0);
  std::filesystem::create_directories(o.out);
  std::vector<analysis::NeedleReport> reports;
  std::vector<std::string> names;
  for (size_t i = 0; i < o.ckpts.size(); ++i) {
    const std::string& path = o.ckpts[i];
    const ScratchDecoderConfig cfg = read_scratch_decoder_config(path);
    ScratchDecoder m(cfg, {dev, dt, false}, ctx);
    load_scratch_decoder(m, ctx, path);
    analysis::NeedleReport r = analysis::run_needle_analysis(m, ctx, tok, opt);
    r.label = path;
    const std::string json_path = o.out + "/needle_" + result_name(path, names) + ".json";
    write_file(json_path, analysis::needle_report_json(r) + "\n");
    std::printf("%s (%s): %s\n", path.c_str(), cfg.differential ? "differential" : "standard", json_path.c_str());
    for (const auto& d : r.depths)
      std::printf("  depth %-5g answer %.6g  noise %.6g  ANR %.6g ± %.3g  (n = %lld)\n", d.depth, d.mean_answer,
                  d.mean_noise, d.mean_anr, d.std_anr, (long long)d.n);
    reports.push_back(std::move(r));
  }
  const std::string csv_path = o.out + "/needle_anr.csv";
  write_file(csv_path, analysis::needle_reports_csv(reports));
  std::printf("CSV: %s\n", csv_path.c_str());
}

void setup(CLI::App& root) {
  // `analysis.study: answer_to_noise` in experiment files (train, validate, config fields).
  analysis::register_needle_study();
  // Another analysis may have created `analyze` already: add `needle` under it.
  CLI::App* analyze = nullptr;
  for (CLI::App* sub : root.get_subcommands({}))
    if (sub->get_name() == "analyze") analyze = sub;
  if (!analyze) {
    analyze = root.add_subcommand("analyze", "Analyses of trained models");
    analyze->require_subcommand(1);
  }
  auto o = std::make_shared<NeedleCliOptions>();
  auto* c = analyze->add_subcommand("needle", "Answer-to-noise attention of scratch decoders on needle contexts (seed 002)");
  c->footer(
      "Each context holds filler words, a target needle 'The magic number for City_0 is N' at the given depth,\n"
      "three distractor needles and the question. Default analysis: last layer, heads averaged (differential:\n"
      "A1 - lambda*A2), rows = the question's tokens; answer = attention mass on the needle's tokens, noise = on\n"
      "the other context tokens; ANR = per-token answer / per-token noise. Writes one JSON per checkpoint, named\n"
      "by its run (runs/<run>/checkpoints/best/model.safetensors -> needle_<run>.json), and needle_anr.csv under\n"
      "--out; tools/plot.py --needle <out> draws them.\n"
      "Example:\n"
      "  attnlab analyze needle --ckpt std.safetensors --ckpt diff.safetensors --depths 0,0.25,0.5,0.75");
  c->add_option("--ckpt", o->ckpts, "scratch-decoder checkpoint (.safetensors); repeat for several")->required();
  c->add_option("--tokenizer", o->tokenizer, "gpt2 (default) or a tokenizer folder/file");
  c->add_option("--depths", o->depths, "needle depths in [0, 1), comma-separated (default 0,0.25,0.5,0.75)");
  c->add_option("--samples", o->samples, "contexts per depth (default 200)");
  c->add_option("--seed", o->seed, "generator seed (default 0)");
  c->add_option("--context-length", o->context_length, "n_words = floor(this / 4) (default 511)");
  c->add_flag("--needle-all-depths", o->all_depths, "ORIGINAL: one context per sample with the target at every depth");
  c->add_flag("--seed-compat-analysis", o->seed_compat, "ORIGINAL analysis (raw-embedding head-0 map, min-max)");
  c->add_option("--layer", o->layer, "layer to read (default: the last)");
  c->add_option("--rows", o->rows, "question (default) or last");
  c->add_option("--out", o->out, "output folder (default needle_analysis)");
  c->add_option("--device", o->device, "cpu (default) or cuda");
  c->add_option("--dtype", o->dtype, "f32 (default), f64 (CPU) or bf16 (CUDA)");
  c->callback([o] { run_needle(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
