// The trainer on the CPU: exact resume, gradient accumulation, the NaN/Inf guard, stop signals.
#include <csignal>
#include <cstring>
#include <filesystem>

#include "core/io/safetensors.h"
#include "train/metrics.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

std::string checkpoint_file(const std::string& run_dir, int64_t step, const char* file) {
  return run_dir + "/checkpoints/" + train::checkpoint_name(step) + "/" + file;
}

// Train records of metrics.jsonl without the timing fields (which differ from run to run).
std::vector<nlohmann::json> train_records(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (nlohmann::json j : train::read_metrics(path)) {
    j.erase("tokens_per_s");
    j.erase("mfu");
    j.erase("elapsed_s");
    out.push_back(j);
  }
  return out;
}

TEST(Trainer, ResumeReproducesTheUninterruptedRunBitForBit) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  // Dropout on (its Philox offset must resume), accumulation over 2 micro-batches, evaluation in
  // between (it must not disturb anything), a warmup + cosine schedule across the break.
  const std::vector<std::string> common = {
      "train.steps=8", "train.grad_accum=2", "model.arch.embd_pdrop=0.1", "model.arch.resid_pdrop=0.1",
      "eval.every_steps=3", "eval.batches=2", "schedule.warmup_steps=2", "log.every_steps=3"};
  const auto straight_cfg = tiny_experiment(d.path, "straight", common);
  const auto split_cfg = tiny_experiment(d.path, "split", common);

  train::Trainer straight(straight_cfg, quiet_options(data));
  const train::TrainResult a = straight.run();
  ASSERT_EQ(a.steps_done, 8);
  EXPECT_GT(straight.state().rng_offset, 0u) << "dropout drew no random numbers: the test would not cover the RNG";

  auto stop_half = quiet_options(data);
  stop_half.stop_at_step = 4;
  train::TrainResult b1;
  {
    train::Trainer first(split_cfg, stop_half);
    b1 = first.run();
  }
  EXPECT_TRUE(b1.interrupted);
  EXPECT_EQ(b1.steps_done, 4);
  EXPECT_EQ(b1.last_checkpoint, d.path + "/split/checkpoints/" + train::checkpoint_name(4));
  train::Trainer second(split_cfg, quiet_options(data));
  EXPECT_EQ(second.state().step, 4);
  const train::TrainResult b2 = second.run();
  EXPECT_EQ(b2.start_step, 4);
  EXPECT_EQ(b2.steps_done, 8);
  EXPECT_FALSE(b2.interrupted);

  // Weights and optimizer state: the same bytes.
  for (const char* file : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(read_text(checkpoint_file(d.path + "/straight", 8, file)), read_text(checkpoint_file(d.path + "/split", 8, file)))
        << file;
  EXPECT_EQ(param_values(straight.ctx(), straight.model()), param_values(second.ctx(), second.model()));
  EXPECT_EQ(straight.state().rng_offset, second.state().rng_offset);
  EXPECT_EQ(straight.state().tokens, second.state().tokens);
  EXPECT_EQ(straight.state().last_val_loss, second.state().last_val_loss);
  // Every logged step (mean loss over its interval, lr, grad norm, tokens) and evaluation, once
  // each, identical: the break at step 4 falls inside the logging interval 4..6.
  const auto ma = train_records(d.path + "/straight/metrics.jsonl");
  const auto mb = train_records(d.path + "/split/metrics.jsonl");
  EXPECT_EQ(ma.size(), 4u + 3u);  // steps 1, 3, 6, 8; evaluations after steps 3, 6 and 8
  EXPECT_EQ(ma, mb);
}

TEST(Trainer, AccumulatedMicroBatchesGiveTheGradientOfOneBatch) {
  ScratchDir d;
  // SFT records with prompt masks: micro-batches carry different target counts, so only the
  // global count as denominator makes 3 x 2 rows equal 1 x 6 rows.
  auto data = synthetic_sft_data(d / "sft", 48, 32, 16);
  auto run_first_step = [&](const std::string& name, int micro, int accum) {
    auto cfg = tiny_experiment(d.path, name, {"task=sft", "data.sft_format=gsm8k", "data.format=jsonl",
                                              "data.loss_on=assistant", "train.steps=1", "schedule.warmup_steps=0",
                                              "train.micro_batch=" + std::to_string(micro),
                                              "train.grad_accum=" + std::to_string(accum)});
    std::map<std::string, std::vector<double>> grads;
    auto opt = quiet_options(data);
    opt.after_backward = [&](train::Trainer& t, int64_t) {
      for (const Param& p : t.model().params())
        if (p.grad.defined()) grads[p.name] = to_host_f64(t.ctx(), p.grad);
    };
    train::Trainer t(cfg, opt);
    const train::TrainResult r = t.run();
    return std::make_pair(r.first_loss, grads);
  };
  const auto [loss_accum, g_accum] = run_first_step("accum", 2, 3);
  const auto [loss_batch, g_batch] = run_first_step("batch", 6, 1);
  EXPECT_NEAR(loss_accum, loss_batch, 1e-6 * std::abs(loss_batch));
  ASSERT_EQ(g_accum.size(), g_batch.size());
  ASSERT_FALSE(g_accum.empty());
  for (const auto& [name, g] : g_batch) EXPECT_LT(rel_err(g_accum.at(name), g), 1e-5) << name;
}

TEST(Trainer, NonFiniteGradientSkipsTheStepAndTrainingGoesOn) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  const auto cfg = tiny_experiment(d.path, "nan", {"train.steps=5"});
  std::map<int64_t, std::map<std::string, std::vector<double>>> before_update;
  auto opt = quiet_options(data);
  opt.after_backward = [&](train::Trainer& t, int64_t step) {
    before_update[step] = param_values(t.ctx(), t.model());
    if (step == 2) {  // one NaN in one gradient of the third step
      Param& p = t.model().params().at("transformer.h.1.mlp.c_fc.weight");
      std::vector<double> g = to_host_f64(t.ctx(), p.grad);
      g[7] = std::nan("");
      from_host_f64(t.ctx(), p.grad, g);
    }
  };
  train::Trainer t(cfg, opt);
  const train::TrainResult r = t.run();
  EXPECT_EQ(r.steps_done, 5);
  EXPECT_EQ(r.skipped_steps, 1);
  EXPECT_NE(before_update.at(1), before_update.at(2));  // a normal step changes the weights
  EXPECT_EQ(before_update.at(2), before_update.at(3));  // the poisoned one changes nothing
  EXPECT_NE(before_update.at(3), before_update.at(4));  // and training goes on
  // AdamW's step count advanced only over the 4 applied updates.
  SafetensorsFile opt_state = SafetensorsFile::open(checkpoint_file(d.path + "/nan", 5, "optimizer.safetensors"));
  EXPECT_EQ(opt_state.metadata().at("applied_steps"), "4");
  const auto records = train::read_metrics(d.path + "/nan/metrics.jsonl");
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[1]["skipped_steps"], 0);
  EXPECT_EQ(records[2]["skipped_steps"], 1);
  EXPECT_EQ(records[4]["skipped_steps"], 1);
}

TEST(Trainer, PoisonedInputStopsAfterMaxBadStepsInARow) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  const auto cfg = tiny_experiment(d.path, "poison", {"train.steps=10", "train.max_bad_steps=3"});
  train::Trainer t(cfg, quiet_options(data));
  // A NaN in the position embedding reaches every sequence: every step's loss is NaN.
  Param& wpe = t.model().params().at("transformer.wpe.weight");
  std::vector<double> v = to_host_f64(t.ctx(), wpe.value);
  v[3] = std::nan("");
  from_host_f64(t.ctx(), wpe.value, v);
  const auto before = param_values(t.ctx(), t.model());
  const std::string err = error_of([&] { t.run(); });
  EXPECT_NE(err.find("3 steps in a row"), std::string::npos) << err;
  EXPECT_NE(err.find("NaN/Inf"), std::string::npos) << err;
  EXPECT_NE(err.find("train.max_bad_steps"), std::string::npos) << err;
  EXPECT_EQ(t.state().step, 3);
  EXPECT_EQ(t.state().skipped_steps, 3);
  const auto after = param_values(t.ctx(), t.model());
  for (const auto& [name, values] : before) {
    ASSERT_EQ(values.size(), after.at(name).size());
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isnan(values[i])) ASSERT_EQ(values[i], after.at(name)[i]) << name << "[" << i << "]";
  }
}

TEST(Trainer, SigtermFinishesTheStepSavesAndResumes) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  const auto cfg = tiny_experiment(d.path, "sig", {"train.steps=6"});
  auto opt = quiet_options(data);
  opt.after_backward = [](train::Trainer&, int64_t step) {
    if (step == 2) std::raise(SIGTERM);  // caught by the trainer's handler, not fatal
  };
  train::TrainResult r;
  {
    train::Trainer t(cfg, opt);
    r = t.run();
  }
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.stop_signal, SIGTERM);
  EXPECT_EQ(r.steps_done, 3);  // the step that was running finished
  EXPECT_TRUE(train::is_complete_checkpoint(d.path + "/sig/checkpoints/" + train::checkpoint_name(3)));
  train::Trainer again(cfg, quiet_options(data));
  const train::TrainResult r2 = again.run();
  EXPECT_EQ(r2.start_step, 3);
  EXPECT_EQ(r2.steps_done, 6);
  EXPECT_FALSE(r2.interrupted);
}

TEST(Trainer, ResumeNeverRefusesAFolderWithCheckpoints) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  {
    train::Trainer t(tiny_experiment(d.path, "again", {"train.steps=2"}), quiet_options(data));
    t.run();
  }
  const std::string err = error_of(
      [&] { train::Trainer t(tiny_experiment(d.path, "again", {"train.steps=2", "checkpoint.resume=never"}), quiet_options(data)); });
  EXPECT_NE(err.find("already holds checkpoints"), std::string::npos) << err;
}


// ZeRO-1 on one rank (the whole arena is the rank's share) takes the sharded code path — pieces,
// staging copy, gathered save — and must give the plain run's weights and optimizer state bit
// for bit, also across a resume.
TEST(Trainer, Zero1OnOneRankMatchesThePlainRunBitForBit) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  // Clipping off: the norm is summed per piece, and ZeRO-1's pieces (parameters cut at share
  // boundaries) round the norm differently in its last bit; the updates themselves are
  // element-wise and must match exactly. Clipping under ZeRO-1 is covered by DataParallel.*.
  const std::vector<std::string> common = {"train.steps=4", "distributed.bucket_mb=0.01", "checkpoint.every_steps=2",
                                           "optim.grad_clip=0"};
  std::vector<std::string> z = common;
  z.push_back("distributed.zero1=true");
  train::Trainer plain(tiny_experiment(d.path, "plain", common), quiet_options(data));
  plain.run();
  auto stop = quiet_options(data);
  stop.stop_at_step = 2;
  { train::Trainer first(tiny_experiment(d.path, "zero1", z), stop); first.run(); }
  train::Trainer second(tiny_experiment(d.path, "zero1", z), quiet_options(data));
  EXPECT_EQ(second.state().step, 2);
  second.run();
  EXPECT_EQ(param_values(second.ctx(), second.model()), param_values(plain.ctx(), plain.model()));
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    SafetensorsFile a = SafetensorsFile::open(checkpoint_file(d.path + "/plain", 4, file));
    SafetensorsFile b = SafetensorsFile::open(checkpoint_file(d.path + "/zero1", 4, file));
    ASSERT_EQ(a.names(), b.names()) << file;
    for (const std::string& n : a.names())
      EXPECT_EQ(0, std::memcmp(a.raw(n), b.raw(n), a.info(n).bytes())) << file << ": " << n;
  }
}

}  // namespace
}  // namespace attnlab::test
