// Resuming checks that it is the same run (train/resume_check.h): a config that differs in
// more than run length and reporting is refused before any work, naming the keys and the fix;
// --continue-changed (TrainerOptions::continue_changed) resumes anyway; a weights mismatch on an
// auto-resume says it was one.
#include <filesystem>

#include "train/resume_check.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(ResumeCheck, OnlyRunLengthAndReportingMayChange) {
  for (const char* ok : {"train.steps", "train.epochs", "train.max_tokens", "log.every_steps", "eval.every_steps",
                         "checkpoint.keep_last", "profile.steps", "distributed.zero1"})
    EXPECT_TRUE(train::resume_may_change(ok)) << ok;
  for (const char* no : {"optim.lr", "model.attention.norm", "model.from", "data.path", "run.seed", "run.device",
                         "schedule.kind", "train.micro_batch", "eval.best_metric", "task"})
    EXPECT_FALSE(train::resume_may_change(no)) << no;
}

TEST(ResumeCheck, RefusesAChangedRunBeforeAnyWorkNamingTheKeysAndTheFix) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  {
    train::Trainer t(tiny_experiment(d.path, "r", {"train.steps=3"}), quiet_options(data));
    EXPECT_EQ(t.run().steps_done, 3);
  }
  const std::string config_before = read_text(d / "r/config.yaml");
  const std::string metrics_before = read_text(d / "r/metrics.jsonl");
  ASSERT_FALSE(metrics_before.empty());

  // Another learning rate and another architecture under the same run.name: refused.
  const std::string e = error_of([&] {
    train::Trainer t(tiny_experiment(d.path, "r", {"train.steps=3", "optim.lr=1.0e-2", "model.arch.n_layer=3"}),
                     quiet_options(data));
  });
  EXPECT_NE(e.find("refusing to resume"), std::string::npos) << e;
  EXPECT_NE(e.find("auto-resume"), std::string::npos) << e;
  EXPECT_NE(e.find("optim.lr"), std::string::npos) << e;
  EXPECT_NE(e.find("model.arch"), std::string::npos) << e;
  EXPECT_NE(e.find("run.name"), std::string::npos) << e;
  EXPECT_NE(e.find("--continue-changed"), std::string::npos) << e;
  EXPECT_EQ(e.find("train.steps"), std::string::npos) << "an unchanged field listed: " << e;
  // Nothing was written into the run folder.
  EXPECT_EQ(read_text(d / "r/config.yaml"), config_before);
  EXPECT_EQ(read_text(d / "r/metrics.jsonl"), metrics_before);

  // A longer run with other logging is the same run: it resumes.
  {
    train::Trainer t(tiny_experiment(d.path, "r", {"train.steps=5", "log.every_steps=2"}), quiet_options(data));
    EXPECT_EQ(t.state().step, 3);
    EXPECT_EQ(t.run().steps_done, 5);
  }
  // Asked for explicitly, a changed optimizer setting resumes too.
  {
    train::TrainerOptions o = quiet_options(data);
    o.continue_changed = true;
    train::Trainer t(tiny_experiment(d.path, "r", {"train.steps=6", "optim.lr=1.0e-2"}), o);
    EXPECT_EQ(t.state().step, 5);
  }
}

TEST(ResumeCheck, WeightsThatDoNotFitSayItWasAnAutoResume) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  {
    train::Trainer t(tiny_experiment(d.path, "r", {"train.steps=2"}), quiet_options(data));
    t.run();
  }
  train::TrainerOptions o = quiet_options(data);
  o.continue_changed = true;  // past the config check: the weights themselves do not fit
  const std::string e = error_of([&] {
    train::Trainer t(tiny_experiment(d.path, "r", {"train.steps=2", "model.arch.n_layer=1"}), o);
  });
  EXPECT_NE(e.find("auto-resume"), std::string::npos) << e;
  EXPECT_NE(e.find(d.path + "/r/checkpoints/" + train::checkpoint_name(2)), std::string::npos) << e;
  EXPECT_NE(e.find("run.name"), std::string::npos) << e;
}

}  // namespace
}  // namespace attnlab::test
