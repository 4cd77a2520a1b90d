// Multi-process runs of `attnlab dist selftest`: under mpirun (the MPI communicator's
// collectives across 2 and 3 ranks, and a deliberately wrong input that every rank must
// report), and under `attnlab launch` (the rendezvous path, a failing rank stopping the rest).
// Each run takes about a second; they skip, with the reason, when mpirun or the attnlab binary is
// missing.
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/subprocess.h"

#include <string>

namespace attnlab::test {
namespace {

std::string attnlab_binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

bool have_binary() { return ::access(attnlab_binary().c_str(), X_OK) == 0; }

#define SKIP_WITHOUT_MPIRUN()                                                                          \
  do {                                                                                                 \
    if (!ATTNLAB_WITH_MPI) GTEST_SKIP() << "attnlab was built without MPI";                            \
    if (!have_binary()) GTEST_SKIP() << "the attnlab binary is not built at " << attnlab_binary();     \
    if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun is not on PATH"; \
  } while (0)

#define SKIP_WITHOUT_BINARY() \
  if (!have_binary()) GTEST_SKIP() << "the attnlab binary is not built at " << attnlab_binary()

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(MpiSelftest, TwoRanks) {
  SKIP_WITHOUT_MPIRUN();
  ProcessResult r = run_process(mpirun_prefix(2) + " " + attnlab_binary() + " dist selftest --backend mpi --elements 257");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "dist selftest passed: 31 checks")) << r.output;
  EXPECT_TRUE(contains(r.output, "mpi communicator: rank 0 of 2")) << r.output;
  EXPECT_TRUE(contains(r.output, "from OpenMPI (mpirun)")) << r.output;
  EXPECT_TRUE(contains(r.output, "ok   all_reduce_sum bf16")) << r.output;
}

TEST(MpiSelftest, ThreeRanksAutoBackend) {
  SKIP_WITHOUT_MPIRUN();
  // No --backend: under mpirun the selftest must pick MPI by itself.
  ProcessResult r = run_process(mpirun_prefix(3) + " " + attnlab_binary() + " dist selftest");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "mpi communicator: rank 0 of 3")) << r.output;
  EXPECT_TRUE(contains(r.output, "ok   broadcast from rank 2 f64")) << r.output;
  EXPECT_TRUE(contains(r.output, "ok   reduce_scatter_sum (in place) bf16")) << r.output;
  EXPECT_TRUE(contains(r.output, "dist selftest passed")) << r.output;
}

TEST(MpiSelftest, WrongInputOnOneRankFailsEveryRank) {
  SKIP_WITHOUT_MPIRUN();
  ProcessResult r = run_process(mpirun_prefix(2) + " " + attnlab_binary() + " dist selftest --backend mpi --fault-rank 1");
  EXPECT_NE(r.exit_code, 0) << r.output;
  // Rank 1's extra 1 reaches both ranks' sums; each checks against its own computation.
  EXPECT_TRUE(contains(r.output, "FAILED all_reduce_sum f32 on rank 0: element 0 is 6, expected 5")) << r.output;
  EXPECT_TRUE(contains(r.output, "FAILED all_reduce_sum f32 on rank 1: element 0 is 6, expected 5")) << r.output;
  EXPECT_FALSE(contains(r.output, "dist selftest passed")) << r.output;
}

TEST(LaunchSelftest, ThreeRanksMeetAtTheRendezvous) {
  SKIP_WITHOUT_BINARY();
  ProcessResult r = run_process(attnlab_binary() + " launch --nproc 3 -- dist selftest --backend single");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 0] dist selftest: rank 0 of 3 (local 0) from RANK/WORLD_SIZE")) << r.output;
  EXPECT_TRUE(contains(r.output, "ok   rendezvous of 3 ranks at 127.0.0.1:")) << r.output;
  EXPECT_TRUE(contains(r.output, "dist selftest passed")) << r.output;
}

TEST(LaunchSelftest, FailingRankStopsTheOthers) {
  SKIP_WITHOUT_BINARY();
  // Rank 1 exits before the rendezvous; ranks 0 and 2 would wait there for 60 s.
  ProcessResult r = run_process(attnlab_binary() +
              " launch --nproc 3 --grace 2 -- dist selftest --backend single --timeout 60 --fault-rank 1 "
              "--fault-at start");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 1] attnlab: error: dist selftest: rank 1 stops")) << r.output;
  EXPECT_TRUE(contains(r.output, "attnlab launch: rank 1 exited with status 1; stopping the other ranks")) << r.output;
  EXPECT_LT(r.seconds, 30.0) << r.output;
}

TEST(LaunchSelftest, MpiBackendNeedsMpirun) {
  SKIP_WITHOUT_MPIRUN();
  ProcessResult r = run_process(attnlab_binary() + " launch --nproc 2 -- dist selftest --backend mpi");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "the MPI backend needs its processes started by mpirun")) << r.output;
}

TEST(LaunchSelftest, UsageErrors) {
  SKIP_WITHOUT_BINARY();
  ProcessResult r = run_process(attnlab_binary() + " launch --nproc 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "command is required")) << r.output;
  r = run_process(attnlab_binary() + " launch --nproc 2 -- launch --nproc 2 -- info");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "cannot launch itself")) << r.output;
  r = run_process(attnlab_binary() + " launch --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "--nproc")) << r.output;
  EXPECT_TRUE(contains(r.output, "dist selftest")) << r.output;
}

}  // namespace
}  // namespace attnlab::test
