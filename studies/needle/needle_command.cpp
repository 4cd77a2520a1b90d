// attnlab analyze needle --ckpt A --ckpt B [--depths 0,0.25,0.5,0.75]: the answer-to-noise analysis
// of seed 002 (METHODS §3.6–§3.7) for scratch-decoder checkpoints, written as JSON (one file per
// checkpoint, the ORIGINAL keys) and one CSV of every checkpoint's per-depth numbers. The options
// come from the study's field tables (needle_study.cpp, studies/study_command.h).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/tokenizer.h"
#include "studies/needle/needle_run.h"
#include "studies/needle/needle_study.h"

namespace attnlab::analysis {

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.good()) FAIL_WITH("analyze needle: cannot write '", path, "'. Fix: choose a writable --out folder");
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

}  // namespace

void run_needle_command(const NeedleStudyConfig& s, const NeedleCommandOptions& o) {
  const NeedleRunOptions opt = needle_run_options(s);
  data::Tokenizer tok = data::Tokenizer::load(o.tokenizer);
  Ctx ctx = o.device == Device::cuda ? Ctx::make_cuda(0, 0) : Ctx::make_cpu(0);
  std::filesystem::create_directories(o.out);
  std::vector<NeedleReport> reports;
  std::vector<std::string> names;
  for (size_t i = 0; i < o.ckpts.size(); ++i) {
    const std::string& path = o.ckpts[i];
    const ScratchDecoderConfig cfg = read_scratch_decoder_config(path);
    ScratchDecoder m(cfg, {o.device, o.dtype, false}, ctx);
    load_scratch_decoder(m, ctx, path);
    NeedleReport r = run_needle_analysis(m, ctx, tok, opt);
    r.label = path;
    const std::string json_path = o.out + "/needle_" + result_name(path, names) + ".json";
    write_file(json_path, needle_report_json(r) + "\n");
    std::printf("%s (%s): %s\n", path.c_str(), cfg.differential ? "differential" : "standard", json_path.c_str());
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
