// Checkpoint folders: only folders with DONE count, keep-last-N, the temporary-folder protocol,
// the trainer state's JSON, and a trainer resuming past a save that never finished.
#include <filesystem>

#include "train/checkpoint.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;
using train::CheckpointWriter;

void make_checkpoint(const std::string& root, int64_t step, bool done) {
  const std::string dir = root + "/" + train::checkpoint_name(step);
  write_text(dir + "/model.safetensors", "weights of step " + std::to_string(step));
  if (done) write_text(dir + "/DONE", "complete\n");
}

std::vector<int64_t> steps_of(const std::vector<train::CheckpointRef>& v) {
  std::vector<int64_t> s;
  for (const auto& c : v) s.push_back(c.step);
  return s;
}

TEST(Checkpoint, OnlyFoldersWithDoneAreCheckpoints) {
  ScratchDir d;
  const std::string root = d / "checkpoints";
  EXPECT_FALSE(train::latest_checkpoint(root));  // no folder at all
  make_checkpoint(root, 100, true);
  make_checkpoint(root, 300, false);  // renamed, DONE never written
  make_checkpoint(root, 200, true);
  write_text(root + "/.tmp-step_00000400-123/model.safetensors", "half written");
  write_text(root + "/step_notanumber/DONE", "x");
  EXPECT_EQ(steps_of(train::list_checkpoints(root)), (std::vector<int64_t>{100, 200}));
  ASSERT_TRUE(train::latest_checkpoint(root));
  EXPECT_EQ(train::latest_checkpoint(root)->step, 200);
  EXPECT_EQ(train::latest_checkpoint(root)->path, root + "/" + train::checkpoint_name(200));
}

TEST(Checkpoint, KeepLastDeletesTheOldestCompleteOnesAndLeftovers) {
  ScratchDir d;
  const std::string root = d / "checkpoints";
  for (int64_t s : {10, 20, 30, 40}) make_checkpoint(root, s, true);
  make_checkpoint(root, 25, false);  // older than the newest complete one: a dead save
  make_checkpoint(root, 50, false);  // newer: may still be completed by its writer; kept
  write_text(root + "/.tmp-step_00000060-99/x", "x");
  write_text(root + "/best/DONE", "complete\n");
  const auto removed = train::prune_checkpoints(root, 2);
  EXPECT_EQ(removed.size(), 4u);  // 10, 20, 25 and the temporary folder
  EXPECT_EQ(steps_of(train::list_checkpoints(root)), (std::vector<int64_t>{30, 40}));
  EXPECT_TRUE(fs::exists(root + "/" + train::checkpoint_name(50)));
  EXPECT_FALSE(fs::exists(root + "/.tmp-step_00000060-99"));
  EXPECT_TRUE(fs::exists(root + "/best/DONE"));  // the best checkpoint is not a step checkpoint
  // keep_last 0 keeps every complete one.
  make_checkpoint(root, 60, true);
  train::prune_checkpoints(root, 0);
  EXPECT_EQ(steps_of(train::list_checkpoints(root)), (std::vector<int64_t>{30, 40, 60}));
}

TEST(Checkpoint, WriterPublishesOnlyOnCommit) {
  ScratchDir d;
  const std::string root = d / "checkpoints";
  std::string tmp;
  {
    CheckpointWriter w(root, train::checkpoint_name(5));
    tmp = w.dir();
    write_text(tmp + "/model.safetensors", "abc");
    EXPECT_FALSE(train::latest_checkpoint(root));  // nothing visible while writing
    // Destroyed without commit (an exception while writing): the temporary folder goes.
  }
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(root + "/" + train::checkpoint_name(5)));

  CheckpointWriter w(root, train::checkpoint_name(5));
  write_text(w.dir() + "/model.safetensors", "new");
  const std::string final_path = w.commit();
  EXPECT_EQ(final_path, root + "/" + train::checkpoint_name(5));
  EXPECT_TRUE(train::is_complete_checkpoint(final_path));
  EXPECT_EQ(read_text(final_path + "/model.safetensors"), "new");
  EXPECT_FALSE(fs::exists(w.dir()));

  // Committing under an existing name replaces the folder as a whole.
  CheckpointWriter again(root, train::checkpoint_name(5));
  write_text(again.dir() + "/other.bin", "z");
  again.commit();
  EXPECT_FALSE(fs::exists(final_path + "/model.safetensors"));
  EXPECT_EQ(read_text(final_path + "/other.bin"), "z");
  EXPECT_TRUE(train::is_complete_checkpoint(final_path));
}

TEST(Checkpoint, TrainerStateRoundTripsThroughJson) {
  train::TrainerState s;
  s.step = 1234;
  s.total_steps = 5000;
  s.tokens = 987654321012;
  s.skipped_steps = 3;
  s.consecutive_bad = 1;
  s.elapsed_s = 12.5;
  s.rng_seed = 0xFFFFFFFFFFFFFFF1ull;  // beyond a double's 53 bits: must survive as text
  s.rng_offset = (1ull << 60) + 7;
  s.loader_state = R"({"epoch":2,"position":17})";
  s.best_val_loss = 3.25;
  s.best_step = 1000;
  s.log_loss_sum = 17.25;
  s.log_loss_count = 3;
  s.world_size = 2;
  s.config_yaml = "task: pretrain\n";
  s.config_hash = "0123456789abcdef";
  const nlohmann::json j = nlohmann::json::parse(s.to_json().dump());
  const train::TrainerState r = train::TrainerState::from_json(j, "state.json");
  EXPECT_EQ(r.step, s.step);
  EXPECT_EQ(r.total_steps, s.total_steps);
  EXPECT_EQ(r.tokens, s.tokens);
  EXPECT_EQ(r.skipped_steps, s.skipped_steps);
  EXPECT_EQ(r.consecutive_bad, s.consecutive_bad);
  EXPECT_EQ(r.elapsed_s, s.elapsed_s);
  EXPECT_EQ(r.rng_seed, s.rng_seed);
  EXPECT_EQ(r.rng_offset, s.rng_offset);
  EXPECT_EQ(nlohmann::json::parse(r.loader_state), nlohmann::json::parse(s.loader_state));
  EXPECT_EQ(r.best_val_loss, s.best_val_loss);
  EXPECT_EQ(r.best_step, s.best_step);
  EXPECT_FALSE(r.last_val_loss);
  EXPECT_EQ(r.log_loss_sum, s.log_loss_sum);
  EXPECT_EQ(r.log_loss_count, s.log_loss_count);
  EXPECT_EQ(r.world_size, 2);
  EXPECT_EQ(r.config_yaml, s.config_yaml);
  EXPECT_EQ(r.config_hash, s.config_hash);

  nlohmann::json broken = j;
  broken.erase("rng_offset");
  EXPECT_NE(error_of([&] { train::TrainerState::from_json(broken, "state.json"); }).find("rng_offset"),
            std::string::npos);
  EXPECT_THROW(train::TrainerState::from_json(nlohmann::json{{"step", 1}}, "x.json"), Error);
}

TEST(Checkpoint, ResumeIgnoresAFolderWithoutDone) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  const auto cfg = tiny_experiment(d.path, "r", {"train.steps=6", "checkpoint.every_steps=2", "checkpoint.keep_last=0"});
  {
    train::Trainer t(cfg, quiet_options(data));
    const train::TrainResult r = t.run();
    EXPECT_EQ(r.steps_done, 6);
  }
  const std::string root = d.path + "/r/checkpoints";
  EXPECT_EQ(steps_of(train::list_checkpoints(root)), (std::vector<int64_t>{2, 4, 6}));
  // Steps 6 and 4 "crashed" between the rename and DONE: resume must take step 2.
  fs::remove(root + "/" + train::checkpoint_name(6) + "/DONE");
  fs::remove(root + "/" + train::checkpoint_name(4) + "/DONE");
  train::Trainer again(cfg, quiet_options(data));
  EXPECT_EQ(again.state().step, 2);
  // A folder named explicitly must be complete too.
  const auto explicit_cfg = tiny_experiment(d.path, "r", {"train.steps=6", "checkpoint.resume=" + root + "/" +
                                                                               train::checkpoint_name(4)});
  EXPECT_NE(error_of([&] { train::Trainer t(explicit_cfg, quiet_options(data)); }).find("DONE"), std::string::npos);
}

}  // namespace
}  // namespace attnlab::test
