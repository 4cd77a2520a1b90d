#pragma once
// Who am I in a multi-process job? Rank, world size and local rank from the launcher's
// environment, and where the rendezvous (rank 0) listens.
//
// Precedence, first match wins (the others are listed in LaunchEnv::ignored and the log line):
//   1. torch-style RANK / WORLD_SIZE / LOCAL_RANK  (torchrun, `attnlab launch`, hand-set)
//   2. OpenMPI  OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK  (mpirun)
//   3. Slurm    SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID  (srun)
//   4. nothing set: a single process (rank 0 of 1).
// Why this order: the explicit RANK beats every scheduler (torchrun run by srun sees both, and
// only torchrun's values are per process); mpirun inside a Slurm allocation inherits the batch
// script's SLURM_PROCID=0, so OpenMPI's per-process values must beat Slurm's. A Slurm batch
// script that runs attnlab without srun also looks like rank 0 of SLURM_NTASKS; it then waits at
// the rendezvous for peers that never come (the timeout message says to launch with srun).
//
// A source counts as present when any of its rank variables is set; then all of them must be
// present and consistent (0 <= rank < world, 0 <= local rank < local size), else one Error
// names the variables and their values.
//
// Rendezvous address (only needed by backends that rendezvous over TCP, i.e. NCCL):
//   MASTER_ADDR / MASTER_PORT when set (any launcher). Under Slurm with MASTER_ADDR unset: the
//   first host of SLURM_STEP_NODELIST, else of SLURM_JOB_NODELIST (srun places task 0 on the
//   first node of its list), else SLURM_LAUNCH_NODE_IPADDR (the node srun ran on: right in a
//   batch script, wrong for an srun typed on a login node, hence last). Under Slurm with
//   MASTER_PORT unset: 20000 + SLURM_JOB_ID % 20000, the same on every task of the job.
#include <string>
#include <vector>

namespace attnlab::dist {

enum class LaunchSource { single, torch_env, openmpi, slurm };

// "RANK/WORLD_SIZE (torchrun or attnlab launch)", "OpenMPI (mpirun)", "Slurm (srun)", "none".
const char* launch_source_name(LaunchSource s);

struct LaunchEnv {
  LaunchSource source = LaunchSource::single;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = -1;    // processes on this node; -1 when the launcher does not say
  std::string master_addr;      // empty when unknown
  int master_port = 0;          // 0 when unknown
  std::string master_from;      // which variables gave master_addr:master_port, for the log
  std::vector<LaunchSource> ignored;  // other launchers whose variables were also set

  bool distributed() const { return world_size > 1; }
  // One line for the log: "rank 2 of 4 (local 0) from Slurm (srun); rendezvous 10.0.0.1:29500
  // (SLURM_STEP_NODELIST, MASTER_PORT); also set, ignored: OpenMPI (mpirun)".
  std::string describe() const;
  // Throws naming the variables to set unless master_addr and master_port are known.
  void require_master() const;
};

// Reads the process environment. Throws attnlab::Error on missing or inconsistent values.
LaunchEnv discover_launch_env();

// The first host of a Slurm hostlist: "gpu[07-09,12],cpu3" -> "gpu07"; "a[1-2]-b[5]" -> "a1-b5".
// Throws on an empty or malformed list.
std::string first_slurm_host(const std::string& hostlist);

}  // namespace attnlab::dist
