// Data parallelism on the CPU: the trainer under mpirun (tests/dist/dp_worker_main.cpp) against
// single-process runs of the same data (DESIGN.md §9, issue "data-parallel training").
//   - w ranks of micro-batch B equal one rank accumulating w micro-batches of B (same items per
//     step, the loss normalised by the global target count): same parameters within fp32
//     reduction-order rounding;
//   - ZeRO-1 equals plain data parallelism (parameters and the gathered optimizer state);
//   - a checkpoint of 2 ranks resumes on 1 and on 3 ranks and the run completes.
// Each mpirun takes a few seconds; the tests skip, with the reason, without mpirun or the binaries.
#include <unistd.h>

#include <filesystem>

#include "core/io/safetensors.h"
#include "support/subprocess.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

std::string worker_binary() { return std::string(ATTNLAB_BINARY_DIR) + "/tests/attnlab_dp_worker"; }

#define SKIP_WITHOUT_MPI_WORKER()                                                                           \
  do {                                                                                                      \
    if (!ATTNLAB_WITH_MPI) GTEST_SKIP() << "attnlab was built without MPI";                                 \
    if (::access(worker_binary().c_str(), X_OK) != 0) GTEST_SKIP() << "no worker binary at " << worker_binary(); \
    if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun is not on PATH";      \
  } while (0)

// Runs the worker on `np` ranks; fails the test (with the output) unless it exits 0.
void run_ranks(int np, const std::string& out_dir, const std::string& name, const std::vector<std::string>& args) {
  std::string cmd = mpirun_prefix(np) + " " + worker_binary() + " " + out_dir + " " + name;
  for (const std::string& a : args) cmd += " " + a;
  const ProcessResult r = run_process(cmd, 120);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
}

// Every tensor of a safetensors file as doubles.
std::map<std::string, std::vector<double>> read_tensors(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, std::vector<double>> out;
  Ctx cpu = Ctx::make_cpu();
  for (const std::string& n : f.names()) out[n] = to_host_f64(cpu, f.view(n));
  return out;
}

std::string final_file(const std::string& out_dir, const std::string& name, int64_t step, const char* file) {
  return out_dir + "/" + name + "/checkpoints/" + train::checkpoint_name(step) + "/" + file;
}

// max |a − b| / max(max |b|, floor) per tensor, the largest over the tensors (both must hold the
// same names). `floor` compares tensors of pure rounding noise absolutely (optimizer moments of
// analytically zero gradients).
double worst_rel(const std::map<std::string, std::vector<double>>& a, const std::map<std::string, std::vector<double>>& b,
                 std::string* worst_name = nullptr, double floor = 1e-30) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [n, vb] : b) {
    auto it = a.find(n);
    if (it == a.end()) {
      ADD_FAILURE() << "missing " << n;
      continue;
    }
    double scale = 0, diff = 0;
    for (size_t i = 0; i < vb.size(); ++i) {
      scale = std::max(scale, std::abs(vb[i]));
      diff = std::max(diff, std::abs(it->second[i] - vb[i]));
    }
    const double r = diff / std::max(scale, floor);
    if (r > worst) {
      worst = r;
      if (worst_name) *worst_name = n;
    }
  }
  return worst;
}

// The common settings: no dropout, no evaluation, a checkpoint at the end only. optim.eps is
// raised from 1e-8 to 1e-4: some gradients are analytically zero (GPT-2's key bias cannot change a
// softmax) and hold only rounding noise (~1e-10), which AdamW with eps 1e-8 would normalise into
// full ±lr steps — a different summation order then gives a different noise step. With eps 1e-4
// those steps are negligible and every real gradient (≥ 1e-3 here) is unaffected.
std::vector<std::string> common(std::vector<std::string> extra) {
  std::vector<std::string> v = {"train.steps=4", "train.micro_batch=2", "schedule.warmup_steps=1", "optim.grad_clip=1.0",
                                "optim.eps=1e-4"};
  v.insert(v.end(), extra.begin(), extra.end());
  return v;
}

// One process accumulating `accum` micro-batches of 2 rows; returns the final checkpoint's weights.
std::map<std::string, std::vector<double>> single_process(const std::string& dir, const std::string& name, int accum) {
  auto data = synthetic_data(dir + "/shards-single", 160, 32);
  const auto cfg = tiny_experiment(dir, name, common({"train.grad_accum=" + std::to_string(accum)}));
  train::Trainer t(cfg, quiet_options(data));
  t.run();
  return read_tensors(final_file(dir, name, 4, "model.safetensors"));
}

class DataParallel : public ::testing::TestWithParam<int> {};

TEST_P(DataParallel, RanksEqualOneRankAccumulatingAsManyMicroBatches) {
  SKIP_WITHOUT_MPI_WORKER();
  const int np = GetParam();
  ScratchDir d;
  const auto one = single_process(d.path, "single", np);
  run_ranks(np, d.path, "ranks", common({"train.grad_accum=1"}));
  const auto many = read_tensors(final_file(d.path, "ranks", 4, "model.safetensors"));
  std::string where;
  const double err = worst_rel(many, one, &where);
  EXPECT_LT(err, 2e-5) << "worst tensor " << where;
  // The comparison can fail: one rank without the accumulation (half the items per step) ends
  // far from both.
  const auto fewer = single_process(d.path, "fewer", 1);
  EXPECT_GT(worst_rel(fewer, one), 1e-3);
}

TEST_P(DataParallel, Zero1EqualsPlainDataParallelism) {
  SKIP_WITHOUT_MPI_WORKER();
  const int np = GetParam();
  ScratchDir d;
  // Small buckets (0.001 MiB = 256 floats) so that shares cut through parameters.
  run_ranks(np, d.path, "plain", common({"distributed.bucket_mb=0.001"}));
  run_ranks(np, d.path, "zero1", common({"distributed.bucket_mb=0.001", "distributed.zero1=true"}));
  std::string where;
  EXPECT_LT(worst_rel(read_tensors(final_file(d.path, "zero1", 4, "model.safetensors")),
                      read_tensors(final_file(d.path, "plain", 4, "model.safetensors")), &where),
            1e-5)
      << where;
  EXPECT_LT(worst_rel(read_tensors(final_file(d.path, "zero1", 4, "optimizer.safetensors")),
                      read_tensors(final_file(d.path, "plain", 4, "optimizer.safetensors")), &where, 1e-6),
            1e-4)
      << where;
}

// SFT with prompt masks: every rank's micro-batch holds a different number of target tokens, so
// only the global target count as the loss denominator makes the ranks' summed gradients equal
// the accumulated ones.
TEST_P(DataParallel, SftRanksEqualOneRankAccumulatingUnderUnevenTargetCounts) {
  SKIP_WITHOUT_MPI_WORKER();
  const int np = GetParam();
  ScratchDir d;
  auto data = synthetic_sft_data(d.path + "/shards-single", 48, 32, 16);
  std::vector<std::string> one_args = kSftOverrides;
  for (const std::string& a : common({"train.grad_accum=" + std::to_string(np)})) one_args.push_back(a);
  train::Trainer t(tiny_experiment(d.path, "single", one_args), quiet_options(data));
  t.run();
  std::vector<std::string> args = {"--sft"};
  for (const std::string& a : common({"train.grad_accum=1"})) args.push_back(a);
  run_ranks(np, d.path, "ranks", args);
  std::string where;
  EXPECT_LT(worst_rel(read_tensors(final_file(d.path, "ranks", 4, "model.safetensors")),
                      read_tensors(final_file(d.path, "single", 4, "model.safetensors")), &where),
            2e-5)
      << where;
}

INSTANTIATE_TEST_SUITE_P(Ranks, DataParallel, ::testing::Values(2, 3),
                         [](const ::testing::TestParamInfo<int>& i) { return std::to_string(i.param) + "ranks"; });

// A checkpoint written by 2 ranks (ZeRO-1, so the optimizer state was gathered) resumes on 1 rank
// (in this process) and on 3 ranks (mpirun), and both runs complete their steps.
TEST(DataParallelResume, TwoRanksResumeOnOneAndOnThree) {
  SKIP_WITHOUT_MPI_WORKER();
  ScratchDir d;
  const std::vector<std::string> args = common({"train.steps=6", "distributed.zero1=true", "checkpoint.every_steps=2"});
  run_ranks(2, d.path, "two", args);
  const std::string ckpt = d.path + "/two/checkpoints/" + train::checkpoint_name(2);
  ASSERT_TRUE(train::is_complete_checkpoint(ckpt));

  // The same 2 ranks resumed from step 2 end exactly where the uninterrupted run did: the
  // gathered ZeRO-1 optimizer state went to disk and came back into the right shares.
  run_ranks(2, d.path, "two_again", common({"train.steps=6", "distributed.zero1=true", "checkpoint.resume=" + ckpt}));
  std::string where;
  EXPECT_EQ(worst_rel(read_tensors(final_file(d.path, "two_again", 6, "model.safetensors")),
                      read_tensors(final_file(d.path, "two", 6, "model.safetensors")), &where),
            0.0)
      << where;
  EXPECT_EQ(worst_rel(read_tensors(final_file(d.path, "two_again", 6, "optimizer.safetensors")),
                      read_tensors(final_file(d.path, "two", 6, "optimizer.safetensors")), &where),
            0.0)
      << where;

  // One rank, in process: it reads the 2-rank checkpoint and finishes steps 3..6.
  auto data = synthetic_data(d.path + "/shards-one", 160, 32);
  auto one_args = common({"train.steps=6", "checkpoint.resume=" + ckpt});
  train::Trainer one(tiny_experiment(d.path, "one", one_args), quiet_options(data));
  EXPECT_EQ(one.state().step, 2);
  const train::TrainResult r = one.run();
  EXPECT_EQ(r.start_step, 2);
  EXPECT_EQ(r.steps_done, 6);
  EXPECT_TRUE(std::isfinite(r.last_loss));

  // Three ranks.
  run_ranks(3, d.path, "three", common({"train.steps=6", "distributed.zero1=true", "checkpoint.resume=" + ckpt}));
  ASSERT_TRUE(train::is_complete_checkpoint(d.path + "/three/checkpoints/" + train::checkpoint_name(6)));
  const auto state = nlohmann::json::parse(train::read_file_text(final_file(d.path, "three", 6, "trainer_state.json")));
  EXPECT_EQ(state["world_size"], 3);
  EXPECT_EQ(state["step"], 6);
}

}  // namespace
}  // namespace attnlab::test
