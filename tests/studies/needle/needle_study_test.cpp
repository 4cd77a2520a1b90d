// The needle study on the study interface: one field table behind the experiment files'
// `analysis:` section and the options of `attnlab analyze needle` (every flag the README uses is
// still there), and it is a builtin study the config loader and the trainer know once installed.
#include <gtest/gtest.h>

#include "core/config/printer.h"
#include "core/error.h"
#include "train/study_hooks.h"
#include "studies/needle/needle_study.h"
#include "studies/registry.h"
#include "studies/study_command.h"

namespace attnlab::test {
namespace {

using analysis::NeedleCommandOptions;
using analysis::NeedleStudyConfig;

// The needle study's tables and command, with a run that records what it would analyse.
class RecordingNeedle : public studies::Study {
 public:
  std::string name() const override { return inner_->name(); }
  std::string doc() const override { return inner_->doc(); }
  studies::FieldTable analysis_fields() const override { return inner_->analysis_fields(); }
  studies::StudyCommand command() const override { return inner_->command(); }
  studies::FieldTable command_fields() const override { return inner_->command_fields(); }
  void run_standalone(const std::any& fields, const std::any& options) const override {
    got_fields = std::any_cast<const NeedleStudyConfig&>(fields);
    got_options = std::any_cast<const NeedleCommandOptions&>(options);
  }
  mutable NeedleStudyConfig got_fields;
  mutable NeedleCommandOptions got_options;

 private:
  std::shared_ptr<const studies::Study> inner_ = studies::needle_study();
};

std::shared_ptr<RecordingNeedle> parse_needle(std::vector<std::string> args) {
  auto study = std::make_shared<RecordingNeedle>();
  CLI::App root("test");
  CLI::App* analyze = root.add_subcommand("analyze", "analyses");
  studies::add_study_command(*analyze, study);
  args.insert(args.begin(), {"analyze", "needle"});
  std::reverse(args.begin(), args.end());
  root.parse(args);
  return study;
}

void expect_same_run_options(const NeedleStudyConfig& a, const NeedleStudyConfig& b) {
  const analysis::NeedleRunOptions x = analysis::needle_run_options(a), y = analysis::needle_run_options(b);
  EXPECT_EQ(x.contexts.depths, y.contexts.depths);
  EXPECT_EQ(x.contexts.samples, y.contexts.samples);
  EXPECT_EQ(x.contexts.context_length, y.contexts.context_length);
  EXPECT_EQ(x.contexts.seed, y.contexts.seed);
  EXPECT_EQ(x.contexts.all_depths, y.contexts.all_depths);
  EXPECT_EQ(x.layer, y.layer);
  EXPECT_EQ(x.last_row_only, y.last_row_only);
  EXPECT_EQ(x.seed_compat, y.seed_compat);
}

TEST(NeedleStudy, IsBuiltinAndInstallsIntoTheLoaderAndTheTrainer) {
  ASSERT_NE(studies::find_builtin_study(analysis::kNeedleStudy), nullptr);
  EXPECT_EQ(studies::find_builtin_study("none"), nullptr);
  studies::install_builtin_studies();
  studies::install_builtin_studies();  // idempotent
  EXPECT_NE(config::find_study(analysis::kNeedleStudy), nullptr);
  EXPECT_TRUE(train::has_study_hooks(analysis::kNeedleStudy));
  const std::string ref = config::print_field_reference("analysis");
  for (const char* f : {"analysis.every_epochs", "analysis.depths", "analysis.seed_compat", "analysis.file"})
    EXPECT_NE(ref.find(f), std::string::npos) << f << " not in\n" << ref;
}

TEST(NeedleStudy, CommandKeepsEveryFlagAndLeavesTrainingFieldsOut) {
  auto study = std::make_shared<RecordingNeedle>();
  CLI::App root("test");
  CLI::App* analyze = root.add_subcommand("analyze", "analyses");
  CLI::App* c = studies::add_study_command(*analyze, study);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->get_name(), "needle");
  for (const char* flag : {"--ckpt", "--tokenizer", "--depths", "--samples", "--seed", "--context-length",
                           "--needle-all-depths", "--seed-compat-analysis", "--layer", "--rows", "--out", "--device",
                           "--dtype"})
    EXPECT_NE(c->get_option_no_throw(flag), nullptr) << flag;
  for (const char* flag : {"--every-epochs", "--every-steps", "--file", "--all-depths", "--seed-compat"})
    EXPECT_EQ(c->get_option_no_throw(flag), nullptr) << flag;
}

TEST(NeedleStudy, CommandLineAndYamlFillTheSameFields) {
  studies::install_builtin_studies();
  const std::string base =
      "task: pretrain\nrun: {name: n}\nmodel: {from: init:decoder_paper}\ndata: {path: corpus.txt}\ntrain: {steps: 3}\n"
      "analysis:\n  study: answer_to_noise\n";
  // Defaults: nothing given either way.
  const auto defaults = parse_needle({"--ckpt", "m.safetensors"});
  const config::ExperimentConfig d = config::load_experiment_text(base, "d.yaml");
  expect_same_run_options(defaults->got_fields, d.analysis.as<NeedleStudyConfig>());
  EXPECT_EQ(defaults->got_options.tokenizer, "auto");  // the checkpoint folder's own, else gpt2
  EXPECT_EQ(defaults->got_options.out, "needle_analysis");
  EXPECT_EQ(defaults->got_options.device, Device::cpu);
  EXPECT_EQ(defaults->got_options.dtype, DType::f32);

  // Every analysis option set to a non-default value, both ways.
  const auto cli = parse_needle({"--ckpt", "a.safetensors", "--ckpt", "b.safetensors", "--depths", "0.1,0.6",
                                 "--samples", "7", "--seed", "5", "--context-length", "64", "--needle-all-depths",
                                 "--seed-compat-analysis", "--layer", "1", "--rows", "last", "--dtype", "f64"});
  const config::ExperimentConfig y = config::load_experiment_text(
      base + "  depths: [0.1, 0.6]\n  samples: 7\n  seed: 5\n  context_length: 64\n  all_depths: true\n"
             "  seed_compat: true\n  layer: 1\n  rows: last\n",
      "y.yaml");
  const NeedleStudyConfig& from_yaml = y.analysis.as<NeedleStudyConfig>();
  expect_same_run_options(cli->got_fields, from_yaml);
  EXPECT_EQ(cli->got_fields.depths, (std::vector<double>{0.1, 0.6}));
  EXPECT_TRUE(cli->got_fields.seed_compat);
  EXPECT_EQ(cli->got_options.ckpts, (std::vector<std::string>{"a.safetensors", "b.safetensors"}));
  EXPECT_EQ(cli->got_options.dtype, DType::f64);
  // Training-only fields keep their declared defaults on the command line.
  EXPECT_EQ(cli->got_fields.file, "needle.jsonl");
  EXPECT_EQ(cli->got_fields.every_epochs, d.analysis.as<NeedleStudyConfig>().every_epochs);

  // The field's own range applies on the command line as in the file.
  std::string err;
  try {
    parse_needle({"--ckpt", "m", "--samples", "0"});
  } catch (const Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("analyze needle: --samples: 0 is out of range [1, 100000]"), std::string::npos) << err;
}

}  // namespace
}  // namespace attnlab::test
