// The trainer with the from-scratch decoders of METHODS §3 (model.from init:decoder_*): exact
// resume from their own checkpoints, per-epoch evaluation, the needle analysis during training,
// and the study's experiment files.
#include <filesystem>

#include "studies/needle/needle.h"
#include "studies/needle/needle_study.h"
#include "core/io/safetensors.h"
#include "core/models/scratch_decoder.h"
#include "core/models/scratch_decoder_config.h"
#include "train/metrics.h"
#include "data/data_test_util.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

std::string checkpoint_file(const std::string& run_dir, int64_t step) {
  return run_dir + "/checkpoints/" + train::checkpoint_name(step) + "/model.safetensors";
}

TEST(ScratchTrain, TrainsBothVariantsAndTheLossFalls) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  for (const char* variant : {"standard", "differential"}) {
    auto cfg = tiny_experiment(d.path, variant, {"train.steps=30", "optim.lr=1e-2", "schedule.warmup_steps=0"},
                               tiny_decoder_yaml(variant));
    train::Trainer t(cfg, quiet_options(data));
    auto* m = dynamic_cast<ScratchDecoder*>(&t.model());
    ASSERT_NE(m, nullptr) << variant;
    EXPECT_EQ(m->config().differential, std::string(variant) == "differential");
    const train::TrainResult r = t.run();
    EXPECT_EQ(r.steps_done, 30);
    // ln 258 ≈ 5.55 at the start; the patterned data is learnable.
    EXPECT_LT(r.last_loss, r.first_loss - 1.0) << variant << ": first " << r.first_loss << " last " << r.last_loss;
    // The final checkpoint is a scratch-decoder file that reads back into a model of the same config.
    const std::string file = checkpoint_file(d.path + "/" + variant, 30);
    const ScratchDecoderConfig saved = read_scratch_decoder_config(file);
    EXPECT_EQ(saved.differential, m->config().differential);
    EXPECT_EQ(saved.hidden, 8);
    ScratchDecoder back(saved, {Device::cpu, DType::f32, false}, t.ctx());
    load_scratch_decoder(back, t.ctx(), file);
    EXPECT_EQ(param_values(t.ctx(), back), param_values(t.ctx(), t.model()));
  }
}

TEST(ScratchTrain, ResumeReproducesTheUninterruptedRunBitForBit) {
  analysis::register_needle_study();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  make_byte_tokenizer(d / "tok");
  // Dropout on (0.1 in the YAML), accumulation, evaluation and the needle analysis in between (they
  // re-plan the model and switch dropout off and on: they must not disturb anything), warmup +
  // cosine across the break.
  const std::vector<std::string> common = {"train.steps=8", "train.grad_accum=2", "eval.every_steps=3",
                                           "eval.batches=2", "schedule.warmup_steps=2", "log.every_steps=3",
                                           "data.tokenizer=" + (d / "tok")};
  const std::string model = tiny_decoder_yaml("differential") +
                            "analysis: {study: answer_to_noise, every_steps: 3, depths: [0.5], samples: 2, "
                            "context_length: 32}\n";
  const auto straight_cfg = tiny_experiment(d.path, "straight", common, model);
  const auto split_cfg = tiny_experiment(d.path, "split", common, model);
  train::Trainer straight(straight_cfg, quiet_options(data));
  ASSERT_EQ(straight.run().steps_done, 8);
  EXPECT_GT(straight.state().rng_offset, 0u) << "dropout drew no random numbers: the test would not cover the RNG";

  auto stop_half = quiet_options(data);
  stop_half.stop_at_step = 4;
  {
    train::Trainer first(split_cfg, stop_half);
    EXPECT_TRUE(first.run().interrupted);
  }
  train::Trainer second(split_cfg, quiet_options(data));
  EXPECT_EQ(second.state().step, 4);
  const train::TrainResult b2 = second.run();
  EXPECT_EQ(b2.start_step, 4);
  EXPECT_EQ(b2.steps_done, 8);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(read_text(d.path + "/straight/checkpoints/" + train::checkpoint_name(8) + "/" + file),
              read_text(d.path + "/split/checkpoints/" + train::checkpoint_name(8) + "/" + file))
        << file;
  EXPECT_EQ(param_values(straight.ctx(), straight.model()), param_values(second.ctx(), second.model()));
  EXPECT_EQ(straight.state().rng_offset, second.state().rng_offset);
  EXPECT_EQ(straight.state().last_val_loss, second.state().last_val_loss);
  // needle.jsonl: steps 3, 6 and 8 once each (the resumed session appends after step 4), the same
  // numbers as the uninterrupted run.
  const auto a = train::read_metrics(d.path + "/straight/needle.jsonl");
  const auto b = train::read_metrics(d.path + "/split/needle.jsonl");
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0]["step"], 3);
  EXPECT_EQ(a[2]["step"], 8);
  EXPECT_EQ(a, b);
}

TEST(ScratchTrain, ResumeRefusesACheckpointOfTheOtherVariant) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 60, 32);
  {
    train::Trainer t(tiny_experiment(d.path, "run", {"train.steps=2"}, tiny_decoder_yaml("standard")), quiet_options(data));
    t.run();
  }
  const std::string err = error_of([&] {
    train::Trainer t(tiny_experiment(d.path, "run", {"train.steps=4"}, tiny_decoder_yaml("differential")),
                     quiet_options(data));
  });
  EXPECT_NE(err.find("holds a standard decoder"), std::string::npos) << err;
}

TEST(ScratchTrain, EvaluatesEveryEpochAndRunsTheNeedleAnalysisWhenAsked) {
  analysis::register_needle_study();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 40, 32);
  data::Tokenizer tok = make_byte_tokenizer(d / "tok");
  // 40 documents of 20–60 tokens, 10 % held out: the training stream holds a few dozen windows of
  // 16, so an epoch is several steps of 4 sequences; 2 epochs, evaluation and analysis each epoch.
  const std::string analysis =
      "analysis: {study: answer_to_noise, every_epochs: 1, depths: [0, 0.5], samples: 2, context_length: 32}\n";
  const auto cfg = tiny_experiment(d.path, "needle",
                                   {"train.steps=null", "train.epochs=2", "eval.every_epochs=1", "eval.batches=2",
                                    "data.tokenizer=" + (d / "tok")},
                                   tiny_decoder_yaml("differential") + analysis);
  train::Trainer t(cfg, quiet_options(data));
  const int64_t total = t.total_steps();
  const train::TrainResult r = t.run();
  ASSERT_EQ(r.steps_done, total);
  ASSERT_GE(total, 4) << "the data should give at least 2 steps per epoch";

  // Evaluations: after each epoch (the second epoch ends at the last step).
  std::vector<int64_t> eval_steps;
  for (const auto& j : train::read_metrics(t.run_dir() + "/metrics.jsonl"))
    if (j["kind"] == "eval") eval_steps.push_back(j["step"].get<int64_t>());
  ASSERT_EQ(eval_steps.size(), 2u);
  EXPECT_EQ(eval_steps[1], total);
  // n training windows of 4 per step: an epoch is ceil(n/4) steps, two epochs ceil(2n/4) = total,
  // so the first epoch ends at ceil(total / 2) whatever n mod 4 is.
  EXPECT_EQ(eval_steps[0], (total + 1) / 2);

  // needle.jsonl: one record per evaluation point, with both depths of 2 samples each.
  const auto records = train::read_metrics(t.run_dir() + "/needle.jsonl");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["step"].get<int64_t>(), eval_steps[0]);
  EXPECT_DOUBLE_EQ(records[0]["epoch"].get<double>(), 1.0);
  EXPECT_EQ(records[1]["step"].get<int64_t>(), total);
  for (const auto& rec : records) {
    EXPECT_EQ(rec["attention"], "differential");
    ASSERT_EQ(rec["depths"].size(), 2u);
    EXPECT_EQ(rec["depths"][1]["depth"].get<double>(), 0.5);
    EXPECT_EQ(rec["depths"][1]["n"].get<int64_t>(), 2);
  }
  // The last record is the analysis of the final weights: recompute it from the final checkpoint.
  const std::string file = checkpoint_file(t.run_dir(), total);
  ScratchDecoder m(read_scratch_decoder_config(file), {Device::cpu, DType::f32, false}, t.ctx());
  load_scratch_decoder(m, t.ctx(), file);
  m.set_training(false);
  analysis::NeedleRunOptions opt;
  opt.contexts.depths = {0, 0.5};
  opt.contexts.samples = 2;
  opt.contexts.context_length = 32;
  const analysis::NeedleReport again = analysis::run_needle_analysis(m, t.ctx(), tok, opt);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_DOUBLE_EQ(records[1]["depths"][k]["answer"].get<double>(), again.depths[k].mean_answer);
    EXPECT_DOUBLE_EQ(records[1]["depths"][k]["noise"].get<double>(), again.depths[k].mean_noise);
    EXPECT_DOUBLE_EQ(records[1]["depths"][k]["anr"].get<double>(), again.depths[k].mean_anr);
  }
}

TEST(ScratchTrain, NeedleAnalysisNeedsAScratchDecoder) {
  analysis::register_needle_study();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 60, 32);
  auto cfg = tiny_experiment(d.path, "gpt2", {"analysis.study=answer_to_noise"});
  const std::string err = error_of([&] { train::Trainer t(cfg, quiet_options(data)); });
  EXPECT_NE(err.find("init:decoder_paper"), std::string::npos) << err;
}

TEST(ScratchTrain, NeedleDueAtTheEveryNthEpochOrStepAndAtTheEnd) {
  analysis::NeedleStudyConfig s;
  s.every_epochs = 2;
  // 5 steps per epoch, 23 steps: epochs end at 5, 10, 15, 20; every second one, and the last step.
  std::vector<int64_t> due;
  for (int64_t step = 0; step <= 23; ++step)
    if (analysis::needle_due(s, step, 23, 5)) due.push_back(step);
  EXPECT_EQ(due, (std::vector<int64_t>{10, 20, 23}));
  s.every_epochs = 0;
  s.every_steps = 7;
  due.clear();
  for (int64_t step = 0; step <= 23; ++step)
    if (analysis::needle_due(s, step, 23, 5)) due.push_back(step);
  EXPECT_EQ(due, (std::vector<int64_t>{7, 14, 21, 23}));
}

TEST(ScratchTrain, TheStudyExperimentFilesLoadAndDescribeTheirModels) {
  analysis::register_needle_study();
  const std::string dir = std::string(ATTNLAB_SOURCE_DIR) + "/experiments/diff-vs-standard/";
  for (const char* variant : {"standard", "differential"}) {
    const config::ExperimentConfig cfg = config::load_experiment(dir + variant + ".yaml");
    ASSERT_TRUE(is_scratch_decoder(cfg.model)) << variant;
    const ScratchDecoderConfig sc = scratch_decoder_config(cfg.model);
    EXPECT_EQ(sc.preset, ScratchDecoderConfig::Preset::paper);
    EXPECT_EQ(sc.differential, std::string(variant) == "differential");
    EXPECT_EQ(sc.hidden, 512);
    EXPECT_EQ(sc.layers, 4);
    EXPECT_EQ(sc.heads, 8);
    EXPECT_EQ(sc.head_dim, 64);
    EXPECT_EQ(sc.context, 512);
    EXPECT_EQ(cfg.data.seq_len, 511);
    EXPECT_EQ(cfg.data.path, "assets:text/sotu");
    EXPECT_EQ(cfg.train.micro_batch * cfg.train.grad_accum, 32);
    EXPECT_DOUBLE_EQ(cfg.optim.lr, 1e-4);
    EXPECT_EQ(cfg.eval.every_epochs.value_or(0), 1);
    EXPECT_EQ(cfg.eval.best_metric, config::BestMetric::val_loss);
    ASSERT_EQ(cfg.analysis.study, analysis::kNeedleStudy);
    const auto& a = cfg.analysis.as<analysis::NeedleStudyConfig>();
    EXPECT_EQ(a.every_epochs, 5);
    EXPECT_EQ(a.depths, (std::vector<double>{0, 0.25, 0.5, 0.75}));
  }
}

}  // namespace
}  // namespace attnlab::test
