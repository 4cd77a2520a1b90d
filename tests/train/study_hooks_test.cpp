// The trainer calls the hooks of the study analysis.study selects (train/study_hooks.h)
// through the interface: after every optimizer step, after every evaluation, with the run's
// numbers; analysis.study none makes no hooks.
#include "core/config/analysis_config.h"
#include "train/study_hooks.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

struct CountingStudyConfig {
  int64_t act_every = 0;
};

void declare_counting(config::FieldBinder<CountingStudyConfig>& f) {
  f.field("act_every", &CountingStudyConfig::act_every, "steps between the study's actions").def(2).at_least(1);
}

// What the hooks saw, for the test to compare with what the trainer did.
struct Seen {
  std::vector<int64_t> steps, totals, acted;
  std::vector<double> epochs;
  std::vector<int64_t> eval_steps;
  std::vector<double> val_losses;
  int made = 0;
  int64_t layers = 0;
  std::string run_dir;
};
Seen seen;

class CountingHooks : public train::StudyHooks {
 public:
  explicit CountingHooks(const train::StudyRun& run) : every_(run.cfg.analysis.as<CountingStudyConfig>().act_every) {
    seen.made += 1;
    seen.layers = run.model.num_layers();
    seen.run_dir = run.run_dir;
  }
  bool on_step(const train::StudyStep& s) override {
    seen.steps.push_back(s.step);
    seen.totals.push_back(s.total_steps);
    seen.epochs.push_back(s.epoch());
    const bool act = s.step % every_ == 0;
    if (act) seen.acted.push_back(s.step);
    return act;
  }
  void on_eval(const train::StudyEval& e) override {
    seen.eval_steps.push_back(e.step);
    seen.val_losses.push_back(e.val_loss);
  }

 private:
  int64_t every_;
};

void install_counting_study() {
  if (!config::find_study("counting_test"))
    config::register_study<CountingStudyConfig>("counting_test", "counts hook calls", declare_counting);
  train::add_study_hooks("counting_test",
                         [](const train::StudyRun& run) { return std::make_unique<CountingHooks>(run); });
}

TEST(StudyHooks, TheTrainerCallsStepAndEvalHooksThroughTheInterface) {
  install_counting_study();
  seen = Seen{};
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 60, 32);
  auto cfg = tiny_experiment(d.path, "hooks",
                             {"analysis.study=counting_test", "analysis.act_every=3", "train.steps=7", "eval.every_steps=2",
                              "eval.batches=1"});
  train::Trainer t(cfg, quiet_options(data));
  EXPECT_EQ(seen.made, 1);
  EXPECT_EQ(seen.layers, 2);
  EXPECT_EQ(seen.run_dir, t.run_dir());
  const train::TrainResult r = t.run();
  ASSERT_EQ(r.steps_done, 7);
  EXPECT_EQ(seen.steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(seen.totals, std::vector<int64_t>(7, 7));
  EXPECT_EQ(seen.acted, (std::vector<int64_t>{3, 6}));
  // Every 2 steps, then once more at the end (step 7 had none).
  EXPECT_EQ(seen.eval_steps, (std::vector<int64_t>{2, 4, 6, 7}));
  ASSERT_TRUE(r.last_val_loss.has_value());
  ASSERT_EQ(seen.val_losses.size(), 4u);
  EXPECT_EQ(seen.val_losses.back(), *r.last_val_loss);
  EXPECT_EQ(seen.val_losses.front(), *r.first_val_loss);
  // epoch() = step / steps_per_epoch: increasing, positive.
  for (size_t i = 1; i < seen.epochs.size(); ++i) EXPECT_GT(seen.epochs[i], seen.epochs[i - 1]);
  EXPECT_GT(seen.epochs.front(), 0.0);
}

TEST(StudyHooks, NoneMakesNoHooksAndAStudyWithoutHooksIsRefused) {
  install_counting_study();
  seen = Seen{};
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 60, 32);
  {
    auto cfg = tiny_experiment(d.path, "off", {"analysis.study=none", "train.steps=2"});
    train::Trainer t(cfg, quiet_options(data));
    t.run();
  }
  EXPECT_EQ(seen.made, 0);
  EXPECT_TRUE(seen.steps.empty());

  // A study the config loader knows but whose hooks are not installed: refused before training.
  if (!config::find_study("hookless_test"))
    config::register_study<CountingStudyConfig>("hookless_test", "no hooks", declare_counting);
  auto cfg = tiny_experiment(d.path, "hookless", {"analysis.study=hookless_test"});
  const std::string err = error_of([&] { train::Trainer t(cfg, quiet_options(data)); });
  EXPECT_NE(err.find("analysis.study hookless_test"), std::string::npos) << err;
  EXPECT_NE(err.find("analysis.study=none"), std::string::npos) << err;
}

}  // namespace
}  // namespace attnlab::test
