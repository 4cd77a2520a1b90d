// attnlab_dp_worker: one rank of a data-parallel training run on the synthetic data of the trainer
// tests (tests/train/train_test_util.h), for the multi-process tests in data_parallel_test.cpp.
// The trainer finds its rank and communicator from the launcher's environment exactly as
// `attnlab train` does; only the data is made here (each rank writes the same shards into its
// own folder), so the tests need neither a tokenizer nor the asset cache.
//
//   mpirun -np 2 attnlab_dp_worker OUT_DIR RUN_NAME [--stop-at N] [--sft] [key.path=value ...]
//
// --sft: SFT records with prompt masks (the test utilities' synthetic_sft_data: ranks see
// different numbers of target tokens) and the SFT task settings.
//
// Exits 0 after the run, 1 with the error on stderr.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/launch_env.h"
#include "core/error.h"
#include "train/train_test_util.h"

int main(int argc, char** argv) {
  using namespace attnlab;
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR RUN_NAME [--stop-at N] [--sft] [key.path=value ...]\n", argv[0]);
    return 2;
  }
  try {
    const std::string out_dir = argv[1], name = argv[2];
    std::vector<std::string> overrides;
    train::TrainerOptions opt;
    bool sft = false;
    for (int i = 3; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--stop-at" && i + 1 < argc) opt.stop_at_step = std::atoll(argv[++i]);
      else if (a == "--sft") sft = true;
      else overrides.push_back(a);
    }
    if (sft) overrides.insert(overrides.begin(), test::kSftOverrides.begin(), test::kSftOverrides.end());
    const dist::LaunchEnv env = dist::discover_launch_env();
    const auto cfg = test::tiny_experiment(out_dir, name, overrides);
    const std::string shards = out_dir + "/shards-rank" + std::to_string(env.rank);
    opt.data = sft ? test::synthetic_sft_data(shards, 48, 32, 16) : test::synthetic_data(shards, 160, 32);
    opt.console = env.rank == 0 ? stdout : nullptr;
    train::Trainer t(cfg, opt);
    const train::TrainResult r = t.run();
    if (env.rank == 0) std::printf("worker: %lld steps, last loss %.6f\n", static_cast<long long>(r.steps_done), r.last_loss);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab_dp_worker: %s\n", e.what());
    return 1;
  }
}
