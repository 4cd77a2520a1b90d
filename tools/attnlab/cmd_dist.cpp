// attnlab dist selftest: under any launcher, create the communicator for the available backend,
// run every collective on rank-dependent data (each dtype, in and out of place, async) and check
// the results against sums computed here, so that a cluster setup can be checked before a run.
// Hidden from the command list (a setup check, not a workflow); `attnlab launch --help` names it.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "dist/communicator.h"
#include "dist/launch_env.h"
#include "dist/rendezvous.h"
#include "core/log.h"
#include "core/memory.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
namespace {

#if ATTNLAB_WITH_NCCL
constexpr bool kWithNccl = true;
#else
constexpr bool kWithNccl = false;
#endif
constexpr bool kWithMpi = ATTNLAB_WITH_MPI;

using dist::Backend;
using dist::CommHandle;
using dist::Communicator;

struct SelftestOptions {
  std::string backend = "auto";
  int64_t elements = 1031;  // per rank and chunk; prime, so no collective sees a round size
  double timeout_s = 120;
  int fault_rank = -1;
  std::string fault_at = "data";
};

// Rank r's value at index i: small positive integers, so every partial sum of up to 36 ranks is an
// integer <= 256 and exact in bf16 as well as f32, f64 and i32.
double value(int r, int64_t i, int salt) { return double(1 + (r * 7 + i * 3 + salt) % 5 + r % 3); }

class Selftest {
 public:
  Selftest(Communicator& comm, const Ctx& ctx, const SelftestOptions& o) : comm_(comm), ctx_(ctx), o_(o) {}

  void run() {
    std::vector<DType> dtypes = {DType::f32, DType::bf16, DType::i32};
    // f64 collectives exist on the host backends and in NCCL; the CUDA single path copies bytes.
    dtypes.push_back(DType::f64);
    for (DType dt : dtypes) {
      all_reduce(dt, false);
      all_reduce(dt, true);
      reduce_scatter(dt, false);
      reduce_scatter(dt, true);
      all_gather(dt, false);
      all_gather(dt, true);
      broadcast(dt);
    }
    async_overlap();
    comm_.barrier();
    ++checks_;
    log_info("  ok   barrier");
  }
  int checks() const { return checks_; }
  int failures() const { return failures_; }

 private:
  int W() const { return comm_.world_size(); }
  int R() const { return comm_.rank(); }

  Buffer buffer(DType dt, int64_t n) {
    Buffer b(ctx_.device, dt, {n}, "selftest");
    poison_tensor(ctx_, b.t());  // an element the collective fails to write stays NaN (or -1)
    return b;
  }
  static Tensor part(const Tensor& t, int64_t begin, int64_t n) {
    return Tensor(static_cast<char*>(t.data) + size_t(begin) * dtype_size(t.dtype), t.dtype, t.device, {n}, t.name);
  }
  std::vector<double> values(int r, int64_t n, int64_t offset, int salt) const {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = value(r, offset + i, salt);
    return v;
  }
  // Sum over ranks, index by index. Exact (see value()); past 36 ranks bf16 rounds.
  std::vector<double> rank_sum(int64_t n, int64_t offset, int salt) const {
    std::vector<double> s(static_cast<size_t>(n), 0.0);
    for (int r = 0; r < W(); ++r)
      for (int64_t i = 0; i < n; ++i) s[size_t(i)] += value(r, offset + i, salt);
    return s;
  }

  void expect(const std::string& what, DType dt, const std::vector<double>& got, const std::vector<double>& want) {
    ++checks_;
    const double tol = dt == DType::bf16 && W() > 36 ? 1e-2 : 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double err = std::abs(got[i] - want[i]);
      if (!(err <= tol * std::abs(want[i]))) {  // NaN fails
        ++failures_;
        log_error("dist selftest FAILED ", what, " ", dtype_name(dt), " on rank ", R(), ": element ", i, " is ",
                  got[i], ", expected ", want[i]);
        return;
      }
    }
    log_info("  ok   ", what, " ", dtype_name(dt));
  }

  void all_reduce(DType dt, bool in_place) {
    const int64_t n = o_.elements;
    const int salt = in_place ? 1 : 0;
    std::vector<double> mine = values(R(), n, 0, salt);
    if (R() == o_.fault_rank && !in_place) mine[0] += 1;  // the check below must then fail
    Buffer send = buffer(dt, n), recv = buffer(dt, n);
    from_host_f64(ctx_, send.t(), mine);
    const Tensor& out = in_place ? send.t() : recv.t();
    comm_.all_reduce_sum(send.t(), out);
    expect(in_place ? "all_reduce_sum (in place)" : "all_reduce_sum", dt, to_host_f64(ctx_, out),
           rank_sum(n, 0, salt));
  }

  void reduce_scatter(DType dt, bool in_place) {
    const int64_t n = o_.elements;
    const int salt = 2 + (in_place ? 1 : 0);
    Buffer send = buffer(dt, n * W()), recv = buffer(dt, n);
    from_host_f64(ctx_, send.t(), values(R(), n * W(), 0, salt));
    const Tensor out = in_place ? part(send.t(), int64_t(R()) * n, n) : recv.t();
    comm_.reduce_scatter_sum(send.t(), out);
    expect(in_place ? "reduce_scatter_sum (in place)" : "reduce_scatter_sum", dt, to_host_f64(ctx_, out),
           rank_sum(n, int64_t(R()) * n, salt));
  }

  void all_gather(DType dt, bool in_place) {
    const int64_t n = o_.elements;
    const int salt = 4 + (in_place ? 1 : 0);
    Buffer send = buffer(dt, n), recv = buffer(dt, n * W());
    const Tensor in = in_place ? part(recv.t(), int64_t(R()) * n, n) : send.t();
    from_host_f64(ctx_, in, values(R(), n, 0, salt));
    comm_.all_gather(in, recv.t());
    std::vector<double> want;
    for (int r = 0; r < W(); ++r) {
      std::vector<double> v = values(r, n, 0, salt);
      want.insert(want.end(), v.begin(), v.end());
    }
    expect(in_place ? "all_gather (in place)" : "all_gather", dt, to_host_f64(ctx_, recv.t()), want);
  }

  void broadcast(DType dt) {
    const int64_t n = o_.elements;
    const int root = W() - 1;  // not rank 0: the root argument has to be honoured
    Buffer buf = buffer(dt, n);
    from_host_f64(ctx_, buf.t(), values(R(), n, 0, 6));
    comm_.broadcast(buf.t(), root);
    expect("broadcast from rank " + std::to_string(root), dt, to_host_f64(ctx_, buf.t()), values(root, n, 0, 6));
  }

  // Two collectives in flight at once, completed in the reverse order, one by polling.
  void async_overlap() {
    const int64_t n = o_.elements;
    Buffer a = buffer(DType::f32, n), b = buffer(DType::f32, n * W()), bout = buffer(DType::f32, n);
    from_host_f64(ctx_, a.t(), values(R(), n, 0, 7));
    from_host_f64(ctx_, b.t(), values(R(), n * W(), 0, 8));
    CommHandle ha = comm_.all_reduce_sum_async(a.t(), a.t());
    CommHandle hb = comm_.reduce_scatter_sum_async(b.t(), bout.t());
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!hb.test() && std::chrono::steady_clock::now() < give_up) {
    }
    hb.wait();
    ha.synchronize();
    expect("reduce_scatter_sum (async, polled)", DType::f32, to_host_f64(ctx_, bout.t()),
           rank_sum(n, int64_t(R()) * n, 8));
    expect("all_reduce_sum (async, in flight with it)", DType::f32, to_host_f64(ctx_, a.t()), rank_sum(n, 0, 7));
  }

  Communicator& comm_;
  Ctx ctx_;
  const SelftestOptions& o_;
  int checks_ = 0;
  int failures_ = 0;
};

// 128 bytes (an NCCL unique id's size) whose last 8 are an FNV-1a hash of the first 120, so a
// receiver can tell the payload arrived whole.
uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

void check_rendezvous(const dist::LaunchEnv& env, const SelftestOptions& o, uint64_t config_hash) {
  env.require_master();
  dist::RendezvousOptions r;
  r.host = env.master_addr;
  r.port = env.master_port;
  r.rank = env.rank;
  r.world_size = env.world_size;
  r.config_hash = config_hash;
  r.timeout_s = o.timeout_s;
  std::vector<uint8_t> payload;
  if (env.rank == 0) {
    std::random_device rd;
    std::mt19937_64 g((uint64_t(rd()) << 32) ^ rd());
    payload.resize(128);
    for (size_t i = 0; i < 120; ++i) payload[i] = uint8_t(g());
    uint64_t h = fnv1a(payload.data(), 120);
    for (int i = 0; i < 8; ++i) payload[120 + i] = uint8_t(h >> (8 * i));
  }
  std::vector<uint8_t> got = dist::rendezvous(r, payload);
  CHECK(got.size() == 128, "rendezvous payload has ", got.size(), " bytes, expected 128");
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h |= uint64_t(got[120 + i]) << (8 * i);
  CHECK(h == fnv1a(got.data(), 120), "the rendezvous payload arrived corrupted (checksum mismatch)");
  log_info("  ok   rendezvous of ", env.world_size, " ranks at ", env.master_addr, ":", env.master_port,
           " (128-byte payload intact on every rank)");
}

void run_selftest(const SelftestOptions& o) {
  const dist::LaunchEnv env = dist::discover_launch_env();
  set_log_rank(env.rank, env.world_size);
  log_info("dist selftest: ", env.describe());
  if (o.fault_at == "start" && env.rank == o.fault_rank)
    FAIL_WITH("dist selftest: rank ", env.rank, " stops before meeting the others (--fault-at start)");
  // Ranks started with different options must not meet: the options are the "config" here.
  const uint64_t config_hash = 0x6174746e6c616200ull ^ uint64_t(o.elements);

  Backend backend = dist::backend_from_name(o.backend);
  const CudaStatus cuda = cuda_status();
  if (backend == Backend::auto_select) {
    const bool one_gpu_each = cuda.usable && (env.local_world_size < 0 || env.local_world_size <= cuda.device_count);
    if (env.source == dist::LaunchSource::openmpi && kWithMpi) backend = Backend::mpi;
    else if (kWithNccl && one_gpu_each) backend = Backend::nccl;
    else backend = Backend::single;
  }

  Ctx ctx = Ctx::make_cpu();
  std::unique_ptr<Communicator> comm;
  if (backend == Backend::mpi) {
    comm = dist::make_mpi_communicator(&env);
  } else if (backend == Backend::nccl) {
    if (!cuda.usable) FAIL_WITH("the nccl backend needs a GPU: ", cuda.reason);
    // The rank's GPU becomes the current device before any other CUDA or NCCL call.
    ctx = Ctx::make_cuda(dist::cuda_device_for_local_rank(env.local_rank, cuda.device_count));
    dist::NcclOptions no;
    no.config_hash = config_hash;
    no.rendezvous_timeout_s = o.timeout_s;
    comm = dist::make_nccl_communicator(ctx, env, no);
  } else {
    // No cross-rank collectives here: the rendezvous is checked across the ranks, the
    // collectives on this rank alone (world size 1), on the GPU when there is one.
    if (env.world_size > 1) check_rendezvous(env, o, config_hash);
    if (cuda.usable) ctx = Ctx::make_cuda(dist::cuda_device_for_local_rank(env.local_rank, cuda.device_count));
    comm = dist::make_single_communicator(ctx);
  }
  log_info("  ", comm->describe());

  Selftest t(*comm, ctx, o);
  t.run();
  int failures = t.failures();
  if (comm->world_size() > 1) {  // every rank learns whether any rank failed, and exits alike
    Buffer total(ctx.device, DType::i32, {1}, "failures");
    from_host_f64(ctx, total.t(), {double(failures)});
    comm->all_reduce_sum(total.t());
    failures = int(to_host_f64(ctx, total.t())[0]);
  }
  const int checks = t.checks();
  const std::string where = comm->describe();
  comm.reset();  // a clean shutdown (MPI_Finalize, ncclCommDestroy) on every rank, pass or fail
  if (failures > 0) {
    log_error("dist selftest FAILED: ", failures, " failed check(s) across the ranks (", where, ")");
    exit_with(kExitFailure);
  }
  log_info("dist selftest passed: ", checks, " checks, ", o.elements, " elements per rank and chunk, ", where,
           env.world_size > 1 && backend == Backend::single ? "; cross-rank collectives need mpirun (mpi) or GPUs (nccl)"
                                                            : "");
}

void setup(CLI::App& root) {
  auto opts = std::make_shared<SelftestOptions>();
  auto* d = root.add_subcommand("dist", "Distributed setup checks: `attnlab dist selftest` runs every collective "
                                         "across the ranks a launcher started");
  d->require_subcommand(1);
  auto* s = d->add_subcommand(
      "selftest",
      "Check a multi-process setup: find this rank from the launcher's variables (RANK/WORLD_SIZE/\n"
      "LOCAL_RANK from torchrun or attnlab launch; OMPI_COMM_WORLD_* from mpirun; SLURM_PROCID/\n"
      "SLURM_NTASKS/SLURM_LOCALID from srun, in that order), create the communicator, run every\n"
      "collective (f32, bf16, f64, i32; in and out of place; async) on rank-dependent data and check\n"
      "the sums. Exits 1 on every rank when any check fails on any rank.\n"
      "Backends: mpi (auto under mpirun), nccl (auto with one GPU per rank; rendezvous on\n"
      "MASTER_ADDR:MASTER_PORT), single (otherwise: the rendezvous across ranks, collectives per rank).\n"
      "Examples:\n"
      "  mpirun -np 4 attnlab dist selftest\n"
      "  attnlab launch --nproc 8 -- dist selftest\n"
      "  srun -N 2 --ntasks-per-node 8 attnlab dist selftest --backend nccl");
  s->add_option("--backend", opts->backend, "auto, single, mpi or nccl")
      ->check(CLI::IsMember({"auto", "single", "mpi", "nccl"}))
      ->capture_default_str();
  s->add_option("--elements", opts->elements, "elements per rank in each collective")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 28))
      ->capture_default_str();
  s->add_option("--timeout", opts->timeout_s, "rendezvous timeout in seconds")->capture_default_str();
  s->add_option("--fault-rank", opts->fault_rank,
                "for testing this test (and launchers): rank R makes the run fail, see --fault-at");
  s->add_option("--fault-at", opts->fault_at,
                "data: rank R feeds a wrong value to the all-reduces, every rank must report it; start: rank R "
                "exits with an error before meeting the others, which a launcher must then stop")
      ->check(CLI::IsMember({"data", "start"}))
      ->capture_default_str();
  s->callback([opts] { run_selftest(*opts); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
