// attnlab analyze needle --ckpt A --ckpt B [--depths 0,0.25,0.5,0.75]: the answer-to-noise analysis
// of seed 002 (METHODS §3.6–§3.7) on any checkpoint attnlab writes (a run checkpoint folder, an HF
// folder such as `attnlab init` output or a pretrained GPT-2/Qwen, or a from-scratch decoder's
// .safetensors file), written as JSON (one file per checkpoint, the ORIGINAL keys) and one CSV of
// every checkpoint's per-depth numbers. The options
// come from the study's field tables (needle_study.cpp, studies/study_command.h).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/io/safetensors.h"
#include "core/models/model_loader.h"
#include "data/tokenizer.h"
#include "data/tokenizer_files.h"
#include "studies/needle/needle_run.h"
#include "studies/needle/needle_study.h"

namespace attnlab::analysis {

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.good()) FAIL_WITH("analyze needle: cannot write '", path, "'. Fix: choose a writable --out folder");
}

// The name a checkpoint's results are filed under: runs/<run>/checkpoints/best (or a file in it)
// -> <run>, runs/<run>/checkpoints/step_N[/...] -> <run>_step_N, any other folder (or its
// model.safetensors) -> the folder's name, any other file -> its stem; a name already taken gets
// _2, _3, ...
std::string result_name(const std::string& ckpt, std::vector<std::string>& taken) {
  namespace fs = std::filesystem;
  fs::path p = fs::absolute(fs::path(ckpt)).lexically_normal();
  if (p.has_parent_path() && !p.has_filename()) p = p.parent_path();  // "folder/"
  const bool is_folder = fs::is_directory(p);
  std::string name = is_folder ? p.filename().string() : p.stem().string();
  const fs::path folder = is_folder ? p : p.parent_path();  // best | step_N
  // An HF folder's weights file: the folder names the model.
  if (!is_folder && p.filename() == "model.safetensors" && folder.has_filename()) name = folder.filename().string();
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

// The model folder `ckpt` names: a folder as given; the model.safetensors of an HF folder -> that
// folder; "" for a from-scratch decoder's .safetensors file (its own config is in its metadata).
std::string model_folder_of(const std::string& ckpt) {
  namespace fs = std::filesystem;
  const fs::path p(ckpt);
  if (fs::is_directory(p)) return ckpt;
  INPUT_CHECK(fs::is_regular_file(p), "analyze needle: --ckpt '", ckpt, "' does not exist. Fix: point it at a model ",
              "folder (config.json + model.safetensors, e.g. runs/<name>/checkpoints/best or `attnlab init` output) ",
              "or a from-scratch decoder's .safetensors file");
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (fs::exists(dir / "config.json")) return dir.string();
  const SafetensorsFile f = SafetensorsFile::open(ckpt);
  const auto it = f.metadata().find("attnlab.model");
  INPUT_CHECK(it != f.metadata().end() && it->second == "scratch_decoder", "analyze needle: --ckpt '", ckpt,
              "' is a .safetensors file with no config.json beside it and not a from-scratch decoder checkpoint. ",
              "Fix: point --ckpt at the model folder (config.json + model.safetensors)");
  return "";
}

// The model of one --ckpt with its weights.
std::unique_ptr<TrainableModel> open_model(const std::string& ckpt, const ModelOptions& options, Ctx& ctx) {
  const std::string folder = model_folder_of(ckpt);
  if (!folder.empty()) return load_any_model(folder, options, ctx);
  auto m = std::make_unique<ScratchDecoder>(read_scratch_decoder_config(ckpt), options, ctx);
  load_scratch_decoder(*m, ctx, ckpt);
  return m;
}

// --tokenizer; auto: the checkpoint folder's own tokenizer files, else gpt2.
std::string tokenizer_for(const std::string& ckpt, const std::string& asked) {
  if (asked != "auto") return asked;
  const std::string folder = model_folder_of(ckpt);
  const std::string dir = folder.empty() ? std::filesystem::path(ckpt).parent_path().string() : folder;
  return !dir.empty() && data::folder_has_tokenizer(dir) ? dir : std::string("gpt2");
}

}  // namespace

void run_needle_command(const NeedleStudyConfig& s, const NeedleCommandOptions& o) {
  const NeedleRunOptions opt = needle_run_options(s);
  Ctx ctx = o.device == Device::cuda ? Ctx::make_cuda(0, 0) : Ctx::make_cpu(0);
  std::filesystem::create_directories(o.out);
  std::vector<NeedleReport> reports;
  std::vector<std::string> names;
  for (size_t i = 0; i < o.ckpts.size(); ++i) {
    const std::string& path = o.ckpts[i];
    const std::unique_ptr<TrainableModel> m = open_model(path, {o.device, o.dtype, false}, ctx);
    const data::Tokenizer tok = data::Tokenizer::load(tokenizer_for(path, o.tokenizer));
    NeedleReport r = run_needle_analysis(*m, ctx, tok, opt);
    r.label = path;
    const std::string json_path = o.out + "/needle_" + result_name(path, names) + ".json";
    write_file(json_path, needle_report_json(r) + "\n");
    std::printf("%s (%s): %s\n", path.c_str(), r.differential ? "differential" : "standard", json_path.c_str());
    for (const auto& d : r.depths)
      std::printf("  depth %-5g answer %.6g  noise %.6g  ANR %.6g ± %.3g  (n = %lld)\n", d.depth, d.mean_answer,
                  d.mean_noise, d.mean_anr, d.std_anr, (long long)d.n);
    reports.push_back(std::move(r));
  }
  const std::string csv_path = o.out + "/needle_anr.csv";
  write_file(csv_path, needle_reports_csv(reports));
  std::printf("CSV: %s\n", csv_path.c_str());
}

}  // namespace attnlab::analysis
