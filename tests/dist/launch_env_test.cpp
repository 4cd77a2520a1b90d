// Launcher-environment discovery: each launcher's variables, the precedence between them, the
// rendezvous address, and the errors for missing or inconsistent values. Each test sets the
// variables in this process and restores the previous environment afterwards.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "dist/launch_env.h"
#include "core/error.h"

namespace attnlab::dist {
namespace {

const char* const kLaunchVars[] = {
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
    "SLURM_LAUNCH_NODE_IPADDR", "SLURM_JOB_ID"};

// Clears every launcher variable for the test's duration and puts the old values back.
class LaunchEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kLaunchVars) {
      if (const char* old = std::getenv(v)) saved_[v] = old;
      unsetenv(v);
    }
  }
  void TearDown() override {
    for (const char* v : kLaunchVars) unsetenv(v);
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
  }
  static void set(const char* k, const std::string& v) { setenv(k, v.c_str(), 1); }
  // The message of the Error discover_launch_env throws (fails the test when it does not throw).
  static std::string error_of_discover() {
    try {
      LaunchEnv e = discover_launch_env();
      ADD_FAILURE() << "expected an error, got " << e.describe();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST_F(LaunchEnvTest, NothingSetIsOneProcess) {
  LaunchEnv e = discover_launch_env();
  EXPECT_EQ(e.source, LaunchSource::single);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_FALSE(e.distributed());
  EXPECT_TRUE(e.master_addr.empty());
  EXPECT_EQ(e.master_port, 0);
  EXPECT_TRUE(e.ignored.empty());
}

TEST_F(LaunchEnvTest, TorchrunVariables) {
  set("RANK", "5");
  set("WORLD_SIZE", "8");
  set("LOCAL_RANK", "1");
  set("LOCAL_WORLD_SIZE", "4");
  set("MASTER_ADDR", "10.1.2.3");
  set("MASTER_PORT", "29511");
  LaunchEnv e = discover_launch_env();
  EXPECT_EQ(e.source, LaunchSource::torch_env);
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 29511);
  const std::string d = e.describe();
  EXPECT_NE(d.find("rank 5 of 8"), std::string::npos) << d;
  EXPECT_NE(d.find("RANK/WORLD_SIZE"), std::string::npos) << d;
  EXPECT_NE(d.find("10.1.2.3:29511"), std::string::npos) << d;
  EXPECT_NO_THROW(e.require_master());
}

TEST_F(LaunchEnvTest, OpenMpiVariables) {
  set("OMPI_COMM_WORLD_RANK", "2");
  set("OMPI_COMM_WORLD_SIZE", "3");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "2");
  set("OMPI_COMM_WORLD_LOCAL_SIZE", "3");
  LaunchEnv e = discover_launch_env();
  EXPECT_EQ(e.source, LaunchSource::openmpi);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world_size, 3);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world_size, 3);
  // mpirun sets no rendezvous address: only the NCCL backend needs one, and says which variables.
  try {
    e.require_master();
    ADD_FAILURE() << "require_master() accepted an unknown address";
  } catch (const Error& err) {
    std::string m = err.what();
    EXPECT_NE(m.find("MASTER_ADDR and MASTER_PORT"), std::string::npos) << m;
  }
}

TEST_F(LaunchEnvTest, SlurmVariablesWithNodelistAndJobPort) {
  set("SLURM_PROCID", "6");
  set("SLURM_NTASKS", "16");
  set("SLURM_LOCALID", "2");
  set("SLURM_JOB_NODELIST", "gpu[07-09,12],cpu3");
  set("SLURM_LAUNCH_NODE_IPADDR", "192.168.7.7");
  set("SLURM_JOB_ID", "123456");
  LaunchEnv e = discover_launch_env();
  EXPECT_EQ(e.source, LaunchSource::slurm);
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world_size, -1);
  EXPECT_EQ(e.master_addr, "gpu07");  // the first host, zero padding kept
  EXPECT_EQ(e.master_port, 23456);    // 20000 + 123456 mod 20000
  EXPECT_NE(e.master_from.find("SLURM_JOB_NODELIST"), std::string::npos) << e.master_from;
}

TEST_F(LaunchEnvTest, SlurmAddressSources) {
  set("SLURM_PROCID", "0");
  set("SLURM_NTASKS", "2");
  set("SLURM_LOCALID", "0");
  set("SLURM_LAUNCH_NODE_IPADDR", "192.168.7.7");
  EXPECT_EQ(discover_launch_env().master_addr, "192.168.7.7");  // no node list: the launch node
  EXPECT_EQ(discover_launch_env().master_port, 0);                // no job id, no MASTER_PORT
  set("SLURM_JOB_NODELIST", "nodeA,nodeB");
  EXPECT_EQ(discover_launch_env().master_addr, "nodeA");
  set("SLURM_STEP_NODELIST", "nodeB");  // the step's own list beats the job's
  EXPECT_EQ(discover_launch_env().master_addr, "nodeB");
  set("MASTER_ADDR", "10.9.9.9");  // an explicit address beats every Slurm guess
  set("MASTER_PORT", "31000");
  set("SLURM_JOB_ID", "77");
  LaunchEnv e = discover_launch_env();
  EXPECT_EQ(e.master_addr, "10.9.9.9");
  EXPECT_EQ(e.master_port, 31000);
}

TEST_F(LaunchEnvTest, SlurmAllocationWithoutTaskIsOneProcess) {
  // salloc shells and batch scripts carry SLURM_NTASKS and SLURM_JOB_ID but are no srun task.
  set("SLURM_NTASKS", "4");
  set("SLURM_JOB_ID", "99");
  LaunchEnv e = discover_launch_env();
  EXPECT_EQ(e.source, LaunchSource::single);
  EXPECT_EQ(e.world_size, 1);
}

TEST_F(LaunchEnvTest, PrecedenceTorchThenOpenMpiThenSlurm) {
  set("SLURM_PROCID", "1");
  set("SLURM_NTASKS", "2");
  set("SLURM_LOCALID", "0");
  set("OMPI_COMM_WORLD_RANK", "3");
  set("OMPI_COMM_WORLD_SIZE", "4");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  LaunchEnv mpi = discover_launch_env();
  EXPECT_EQ(mpi.source, LaunchSource::openmpi);
  EXPECT_EQ(mpi.rank, 3);
  EXPECT_EQ(mpi.world_size, 4);
  ASSERT_EQ(mpi.ignored.size(), 1u);
  EXPECT_EQ(mpi.ignored[0], LaunchSource::slurm);

  set("RANK", "6");
  set("WORLD_SIZE", "7");
  set("LOCAL_RANK", "0");
  LaunchEnv torch = discover_launch_env();
  EXPECT_EQ(torch.source, LaunchSource::torch_env);
  EXPECT_EQ(torch.rank, 6);
  EXPECT_EQ(torch.world_size, 7);
  ASSERT_EQ(torch.ignored.size(), 2u);
  EXPECT_EQ(torch.ignored[0], LaunchSource::openmpi);
  EXPECT_EQ(torch.ignored[1], LaunchSource::slurm);
  const std::string d = torch.describe();
  EXPECT_NE(d.find("ignored: OpenMPI (mpirun), Slurm (srun)"), std::string::npos) << d;
}

TEST_F(LaunchEnvTest, RankNotBelowWorldSizeNamesBothVariables) {
  set("RANK", "4");
  set("WORLD_SIZE", "4");
  set("LOCAL_RANK", "0");
  std::string m = error_of_discover();
  EXPECT_NE(m.find("RANK=4"), std::string::npos) << m;
  EXPECT_NE(m.find("WORLD_SIZE=4"), std::string::npos) << m;

  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  unsetenv("LOCAL_RANK");
  set("OMPI_COMM_WORLD_RANK", "5");
  set("OMPI_COMM_WORLD_SIZE", "2");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "0");
  m = error_of_discover();
  EXPECT_NE(m.find("OMPI_COMM_WORLD_RANK=5"), std::string::npos) << m;
  EXPECT_NE(m.find("OMPI_COMM_WORLD_SIZE=2"), std::string::npos) << m;

  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  set("SLURM_PROCID", "3");
  set("SLURM_NTASKS", "3");
  set("SLURM_LOCALID", "0");
  m = error_of_discover();
  EXPECT_NE(m.find("SLURM_PROCID=3"), std::string::npos) << m;
  EXPECT_NE(m.find("SLURM_NTASKS=3"), std::string::npos) << m;
}

TEST_F(LaunchEnvTest, MissingPiecesAreNamed) {
  set("RANK", "1");
  std::string m = error_of_discover();
  EXPECT_NE(m.find("RANK=1 set but WORLD_SIZE, LOCAL_RANK not"), std::string::npos) << m;

  unsetenv("RANK");
  set("WORLD_SIZE", "2");
  m = error_of_discover();
  EXPECT_NE(m.find("WORLD_SIZE=2 set but RANK, LOCAL_RANK not"), std::string::npos) << m;

  unsetenv("WORLD_SIZE");
  set("SLURM_PROCID", "0");
  set("SLURM_NTASKS", "2");
  m = error_of_discover();
  EXPECT_NE(m.find("but SLURM_LOCALID not"), std::string::npos) << m;
}

TEST_F(LaunchEnvTest, MalformedNumbersAndRanges) {
  set("RANK", "one");
  set("WORLD_SIZE", "2");
  set("LOCAL_RANK", "0");
  EXPECT_NE(error_of_discover().find("RANK='one' is not an integer"), std::string::npos);
  set("RANK", "1x");
  EXPECT_NE(error_of_discover().find("RANK='1x' is not an integer"), std::string::npos);
  set("RANK", "0");
  set("WORLD_SIZE", "0");
  EXPECT_NE(error_of_discover().find("WORLD_SIZE=0 is out of range"), std::string::npos);
  set("WORLD_SIZE", "4");
  set("LOCAL_RANK", "2");
  set("LOCAL_WORLD_SIZE", "2");
  std::string m = error_of_discover();
  EXPECT_NE(m.find("LOCAL_RANK=2 but LOCAL_WORLD_SIZE=2"), std::string::npos) << m;
  unsetenv("LOCAL_WORLD_SIZE");
  set("MASTER_PORT", "70000");
  EXPECT_NE(error_of_discover().find("MASTER_PORT=70000 is out of range"), std::string::npos);
  set("MASTER_PORT", "29500");
  EXPECT_NO_THROW(discover_launch_env());
}

TEST_F(LaunchEnvTest, RequireMasterNamesWhatIsMissing) {
  set("RANK", "0");
  set("WORLD_SIZE", "2");
  set("LOCAL_RANK", "0");
  set("MASTER_ADDR", "127.0.0.1");
  LaunchEnv e = discover_launch_env();
  try {
    e.require_master();
    ADD_FAILURE() << "require_master() accepted a missing port";
  } catch (const Error& err) {
    std::string m = err.what();
    EXPECT_NE(m.find("set MASTER_PORT"), std::string::npos) << m;
    EXPECT_EQ(m.find("MASTER_ADDR and"), std::string::npos) << m;
  }
}

TEST(SlurmHostlist, FirstHost) {
  EXPECT_EQ(first_slurm_host("node01"), "node01");
  EXPECT_EQ(first_slurm_host("gpu[07-09,12],cpu3"), "gpu07");
  EXPECT_EQ(first_slurm_host("cpu3,gpu[07-09]"), "cpu3");
  EXPECT_EQ(first_slurm_host("rack[2-3]-n[003-010]"), "rack2-n003");
  EXPECT_EQ(first_slurm_host("n[5]"), "n5");
  EXPECT_THROW(first_slurm_host(""), Error);
  EXPECT_THROW(first_slurm_host("n[1-4"), Error);
  EXPECT_THROW(first_slurm_host("n[]"), Error);
}

}  // namespace
}  // namespace attnlab::dist
