#include "studies/needle/needle_study.h"

#include <nlohmann/json.hpp>

#include "core/config/analysis_config.h"
#include "studies/registry.h"

namespace attnlab::analysis {

namespace {

void declare(config::FieldBinder<NeedleStudyConfig>& f) {
  f.field("every_epochs", &NeedleStudyConfig::every_epochs,
          "run the analysis every N epochs of training (0: not by epochs); the last step always runs it")
      .def(0)
      .at_least(0)
      .training_only();
  f.field("every_steps", &NeedleStudyConfig::every_steps, "run the analysis every N optimizer steps (0: not by steps)")
      .def(0)
      .at_least(0)
      .training_only();
  f.field("depths", &NeedleStudyConfig::depths, "needle depths (fractions of the context)")
      .def(std::vector<double>{0.0, 0.25, 0.5, 0.75})
      .range_closed_open(0, 1);
  f.field("samples", &NeedleStudyConfig::samples, "contexts per depth (ORIGINAL 50)").def(200).range_closed(1, 100000);
  f.field("context_length", &NeedleStudyConfig::context_length,
          "filler words = floor(context_length / 4); ORIGINAL 511 (keep it within the model's context)")
      .def(511)
      .range_closed(8, 1 << 20);
  f.field("seed", &NeedleStudyConfig::seed, "needle generator seed").def(0).at_least(0);
  f.field("layer", &NeedleStudyConfig::layer, "layer whose attention is read; -1: the last").def(-1).at_least(-1);
  f.enum_field("rows", &NeedleStudyConfig::rows, {{"question", NeedleRows::question}, {"last", NeedleRows::last}},
               "attention rows: the question's tokens, or the last token only")
      .def("question");
  f.field("all_depths", &NeedleStudyConfig::all_depths,
          "ORIGINAL generator: one context per sample with the target at every depth")
      .def(false)
      .cli("--needle-all-depths");
  f.field("seed_compat", &NeedleStudyConfig::seed_compat,
          "ORIGINAL analysis (raw-embedding head-0 map, min-max), for reference only")
      .def(false)
      .cli("--seed-compat-analysis");
  f.field("file", &NeedleStudyConfig::file, "JSON lines file of the results, relative to the run folder")
      .def("needle.jsonl")
      .as_path()
      .training_only();
}

void declare_command(config::FieldBinder<NeedleCommandOptions>& f) {
  f.field("ckpt", &NeedleCommandOptions::ckpts,
          "checkpoint: a model folder (run checkpoint, `attnlab init` output, HF GPT-2/Qwen folder) or a "
          "from-scratch decoder's .safetensors file")
      .required();
  f.field("tokenizer", &NeedleCommandOptions::tokenizer,
          "gpt2, qwen2.5, qwen3 or a tokenizer folder/file; auto: the checkpoint folder's own tokenizer files, "
          "else gpt2")
      .def("auto");
  f.field("out", &NeedleCommandOptions::out, "output folder").def("needle_analysis").as_path();
  f.enum_field("device", &NeedleCommandOptions::device, {{"cpu", Device::cpu}, {"cuda", Device::cuda}},
               "where to run the analysis")
      .def("cpu");
  f.enum_field("dtype", &NeedleCommandOptions::dtype, {{"f32", DType::f32}, {"f64", DType::f64}, {"bf16", DType::bf16}},
               "compute dtype: f64 on the CPU only, bf16 on CUDA only")
      .def("f32");
}

class NeedleStudy : public studies::Study {
 public:
  std::string name() const override { return kNeedleStudy; }
  std::string doc() const override {
    return "answer-to-noise needle analysis of the from-scratch decoders during training (METHODS 3.6-3.7)";
  }
  studies::FieldTable analysis_fields() const override { return studies::field_table("analysis", declare); }
  std::unique_ptr<train::StudyHooks> start_training(const train::StudyRun& run) const override {
    return start_needle_training(run);
  }
  studies::StudyCommand command() const override {
    return {"needle", "Answer-to-noise attention of any checkpoint on needle contexts (seed 002)",
            "Each context holds filler words, a target needle 'The magic number for City_0 is N' at the given depth,\n"
            "three distractor needles and the question. Default analysis: last layer, heads averaged (differential:\n"
            "A1 - lambda*A2), rows = the question's tokens; answer = attention mass on the needle's tokens, noise = on\n"
            "the other context tokens; ANR = per-token answer / per-token noise. Writes one JSON per checkpoint and\n"
            "needle_anr.csv under --out. --ckpt takes every checkpoint attnlab writes: run checkpoints\n"
            "(runs/<name>/checkpoints/step_N or best), HF folders (GPT-2, Qwen2/2.5, Qwen3, `attnlab init` output)\n"
            "and from-scratch decoders' .safetensors files. The analysis options are the fields of the experiment files'\n"
            "`analysis: {study: answer_to_noise}` section (`attnlab config fields analysis`).\n"
            "Example:\n"
            "  attnlab analyze needle --ckpt std.safetensors --ckpt diff.safetensors --depths 0,0.25,0.5,0.75\n"
            "  attnlab init --arch gpt2 --tiny --out /tmp/gpt2-tiny\n"
            "  attnlab analyze needle --ckpt /tmp/gpt2-tiny --samples 2 --context-length 64 --out /tmp/needle-gpt2"};
  }
  studies::FieldTable command_fields() const override { return studies::field_table("", declare_command); }
  void run_standalone(const std::any& fields, const std::any& options) const override {
    run_needle_command(std::any_cast<const NeedleStudyConfig&>(fields), std::any_cast<const NeedleCommandOptions&>(options));
  }
};

}  // namespace

void register_needle_study() { studies::install_study(studies::find_builtin_study(kNeedleStudy)); }

NeedleRunOptions needle_run_options(const NeedleStudyConfig& s) {
  NeedleRunOptions o;
  o.contexts.depths = s.depths;
  o.contexts.samples = s.samples;
  o.contexts.context_length = s.context_length;
  o.contexts.seed = uint64_t(s.seed);
  o.contexts.all_depths = s.all_depths;
  o.layer = s.layer;
  o.last_row_only = s.rows == NeedleRows::last;
  o.seed_compat = s.seed_compat;
  return o;
}

bool needle_due(const NeedleStudyConfig& s, int64_t step, int64_t total, int64_t steps_per_epoch) {
  if (step <= 0) return false;
  if (step == total) return true;
  if (s.every_steps > 0 && step % s.every_steps == 0) return true;
  const int64_t every = s.every_epochs * std::max<int64_t>(1, steps_per_epoch);
  return s.every_epochs > 0 && step % every == 0;
}

nlohmann::ordered_json needle_record(const NeedleReport& r, int64_t step, double epoch) {
  nlohmann::ordered_json j;
  j["step"] = step;
  j["epoch"] = epoch;
  j["attention"] = r.differential ? "differential" : "standard";
  nlohmann::ordered_json depths = nlohmann::ordered_json::array();
  for (const DepthStats& d : r.depths)
    depths.push_back({{"depth", d.depth},
                      {"n", d.n},
                      {"answer", d.mean_answer},
                      {"answer_std", d.std_answer},
                      {"noise", d.mean_noise},
                      {"noise_std", d.std_noise},
                      {"answer_per_token", d.mean_answer_per_token},
                      {"noise_per_token", d.mean_noise_per_token},
                      {"anr", d.mean_anr},
                      {"anr_std", d.std_anr},
                      {"mass_ratio", d.mean_mass_ratio}});
  j["depths"] = std::move(depths);
  return j;
}

}  // namespace attnlab::analysis

namespace attnlab::studies {
std::shared_ptr<const Study> needle_study() { return std::make_shared<analysis::NeedleStudy>(); }
}  // namespace attnlab::studies
