// The exit status table of every attnlab command (tools/attnlab/exit_codes.h): 0 done, 1 runtime
// failure, 2 bad config or arguments (CLI11's own codes mapped), 3 training stopped by a signal
// after saving; and an auto-resume that passes over an unfinished checkpoint says so.
#include <filesystem>

#include "data/data_test_util.h"
#include "support/subprocess.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

std::string binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

#define REQUIRE_BINARY() \
  if (!fs::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")"

TEST(CliExitCodes, BadArgumentsExit2AndHelpListsTheTable) {
  REQUIRE_BINARY();
  std::string out;
  EXPECT_EQ(run_command(binary() + " --help", out), 0) << out;
  for (const char* row : {"Exit status", "0  done", "1  runtime failure", "2  bad config", "3  training stopped"})
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  // CLI11's own errors: an unknown option (109), a missing required argument (106), a value
  // outside its range (105), an unknown subcommand.
  EXPECT_EQ(run_command(binary() + " train --no-such-flag x.yaml", out), 2) << out;
  EXPECT_EQ(run_command(binary() + " train", out), 2) << out;
  EXPECT_EQ(run_command(binary() + " bench --repeats 0 --list", out), 2) << out;
  EXPECT_EQ(run_command(binary() + " no-such-command", out), 2) << out;
  // A command's own argument checks: the same status, with the option named.
  EXPECT_EQ(run_command(binary() + " generate --model /nonexistent --prompt hi --device tpu", out), 2) << out;
  EXPECT_NE(out.find("--device"), std::string::npos) << out;
  // A runtime failure (the model folder does not exist) is 1.
  EXPECT_EQ(run_command(binary() + " inspect /nonexistent/model.safetensors", out), 1) << out;
}

TEST(CliExitCodes, SigintDuringTrainingExits3AfterSavingAndTheResumeSaysWhatItSkipped) {
  REQUIRE_BINARY();
  ScratchDir d;
  make_byte_tokenizer(d / "tok");
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the cat sees the ball number " + std::to_string(i * 7919 % 1000) + ". ";
  write_text(d / "corpus/a.txt", text);
  const std::string yaml = d / "x.yaml";
  write_text(yaml, "task: pretrain\nrun: {name: sig, out_dir: " + d.path + "/runs, device: cpu}\n"
                   "model:\n  from: init:gpt2\n  arch: {n_layer: 1, n_embd: 16, n_head: 2, n_positions: 16, vocab_size: 258}\n"
                   "data: {format: text, path: " + d.path + "/corpus, tokenizer: " + d.path + "/tok, seq_len: 16, val_fraction: 0.0}\n"
                   "train: {micro_batch: 2, steps: 10000000}\nlog: {every_steps: 1, progress: false}\n");
  const std::string run = d.path + "/runs/sig";
  // Start training, wait for its first logged step, then SIGINT it (as Ctrl-C would).
  write_text(d / "stop.sh", binary() + " train --quiet-config " + yaml + " > " + (d / "log") + " 2>&1 &\np=$!\n" +
                                "for i in $(seq 600); do [ -s " + run + "/metrics.jsonl ] && break; sleep 0.1; done\n" +
                                "kill -INT $p\nwait $p\necho \"exit=$?\"\ncat " + (d / "log") + "\n");
  std::string out;
  run_command("bash " + (d / "stop.sh"), out, 120);
  EXPECT_NE(out.find("exit=3"), std::string::npos) << out;
  EXPECT_NE(out.find("stopped by SIGINT"), std::string::npos) << out;
  const auto saved = [&] {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(run + "/checkpoints")) v.push_back(e.path().filename().string());
    return v;
  }();
  ASSERT_EQ(saved.size(), 1u) << out;

  // A save that died before DONE, newer than the saved one: the resume passes over it, says so,
  // and a finished run exits 0.
  fs::create_directories(run + "/checkpoints/step_99999999");
  EXPECT_EQ(run_command(binary() + " train --quiet-config " + yaml + " train.max_tokens=1", out, 120), 0) << out;
  EXPECT_NE(out.find("skipping " + run + "/checkpoints/step_99999999"), std::string::npos) << out;
  EXPECT_NE(out.find("resuming from " + run + "/checkpoints/" + saved[0]), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
