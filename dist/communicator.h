#pragma once
// Collectives across the ranks of a data-parallel job, behind one interface (DESIGN.md §9):
//   single  world size 1: copies and no-ops, so one rank runs the trainer's code path unchanged
//   mpi     OpenMPI on host memory: the CPU backend's data parallelism (communicator_mpi.cpp)
//   nccl    NCCL on CUDA memory, collectives on the communicator's own stream
//           (communicator_nccl.cpp)
//
// Counts are elements: a Tensor's numel, its dtype (f32, bf16, f64, i32) given by the Tensor.
// Every rank must issue the same collectives in the same order with the same counts.
//
// Async variants return a CommHandle. On NCCL the collective runs on a dedicated stream: it
// first waits (cudaEvent) for the work already queued on the compute stream (the Ctx stream
// given at creation), and handle.wait() makes the compute stream wait for its completion —
// the host never blocks. On MPI handle.wait() blocks until the request completes. Until then
// the tensors belong to the collective: do not write them (nor read the output).
// The blocking variants are async + wait(): on NCCL "blocking" therefore means ordered before
// later compute-stream work, not finished on the host (use synchronize() for that).
//
// In place: all_reduce with send == recv; reduce_scatter with recv == send + rank * n (the
// rank's shard of the full buffer, as ZeRO-1 wants; the rest of send is unspecified afterwards);
// all_gather with send == recv + rank * n. Any other overlap is an error.
#include <cstdint>
#include <memory>
#include <string>

#include "core/ctx.h"
#include "core/tensor.h"

namespace attnlab::dist {

struct LaunchEnv;

enum class Backend : uint8_t { auto_select, single, mpi, nccl };
const char* backend_name(Backend b);                // "auto", "single", "mpi", "nccl"
Backend backend_from_name(const std::string& name);  // throws naming the choices

class Communicator;

// One collective in flight. Move-only; a handle still pending when destroyed waits (errors
// there are logged, not thrown). Handles must not outlive their communicator.
class CommHandle {
 public:
  CommHandle() = default;  // an already-complete collective
  ~CommHandle();
  CommHandle(CommHandle&& o) noexcept : owner_(o.owner_), slot_(o.slot_) { o.owner_ = nullptr; }
  CommHandle& operator=(CommHandle&& o) noexcept;
  CommHandle(const CommHandle&) = delete;
  CommHandle& operator=(const CommHandle&) = delete;

  // Orders what follows after the collective: CPU backends return with the result in place;
  // NCCL makes the compute stream wait (the host does not). No-op once done.
  void wait();
  // Blocks the host until the collective has completed.
  void synchronize();
  // Non-blocking: true once the collective has completed (then the handle is done). On MPI this
  // also drives the progress of non-blocking collectives.
  bool test();
  bool pending() const { return owner_ != nullptr; }

 private:
  friend class Communicator;
  CommHandle(Communicator* owner, int slot) : owner_(owner), slot_(slot) {}
  void wait_quietly() noexcept;
  Communicator* owner_ = nullptr;
  int slot_ = -1;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  Device device() const { return device_; }  // where the tensors it takes live
  virtual Backend backend() const = 0;

  // recv = sum over ranks of send (same dtype and count).
  CommHandle all_reduce_sum_async(const Tensor& send, const Tensor& recv);
  // recv (n elements) = sum over ranks of send[rank * n, (rank + 1) * n); send has world * n.
  CommHandle reduce_scatter_sum_async(const Tensor& send, const Tensor& recv);
  // recv[r * n, (r + 1) * n) = rank r's send (n elements); recv has world * n.
  CommHandle all_gather_async(const Tensor& send, const Tensor& recv);
  // buf = root's buf on every rank.
  CommHandle broadcast_async(const Tensor& buf, int root);

  void all_reduce_sum(const Tensor& send, const Tensor& recv) { all_reduce_sum_async(send, recv).wait(); }
  void all_reduce_sum(const Tensor& buf) { all_reduce_sum(buf, buf); }
  void reduce_scatter_sum(const Tensor& send, const Tensor& recv) { reduce_scatter_sum_async(send, recv).wait(); }
  void all_gather(const Tensor& send, const Tensor& recv) { all_gather_async(send, recv).wait(); }
  void broadcast(const Tensor& buf, int root) { broadcast_async(buf, root).wait(); }

  // Returns on every rank once all ranks have called it (the host blocks, on every backend).
  virtual void barrier() = 0;
  // Blocks the host until every collective issued so far has completed.
  virtual void synchronize() = 0;
  // One line for the log: backend, rank, world, device.
  std::string describe() const;

 protected:
  Communicator(Device device, int rank, int world_size, int local_rank)
      : device_(device), rank_(rank), world_size_(world_size), local_rank_(local_rank) {}

  // The backends: arguments are already checked (dtype, device, counts, overlap) and non-empty.
  virtual CommHandle do_all_reduce(const Tensor& send, const Tensor& recv) = 0;
  virtual CommHandle do_reduce_scatter(const Tensor& send, const Tensor& recv) = 0;
  virtual CommHandle do_all_gather(const Tensor& send, const Tensor& recv) = 0;
  virtual CommHandle do_broadcast(const Tensor& buf, int root) = 0;

  // Pending-collective slots, owned by the backend. finish(slot, host_sync) completes the
  // ordering (host_sync: also blocks the host) and frees the slot; poll(slot) frees it and
  // returns true when complete.
  friend class CommHandle;
  virtual void finish(int slot, bool host_sync) = 0;
  virtual bool poll(int slot) = 0;
  CommHandle make_handle(int slot) { return CommHandle(this, slot); }

  Device device_;
  int rank_, world_size_, local_rank_;
};

// ---- creating one -------------------------------------------------------------------------

// World size 1 on ctx's device; copies run on the ctx stream.
std::unique_ptr<Communicator> make_single_communicator(const Ctx& ctx);

// OpenMPI on host memory. Initialises MPI (once per process; finalised when the last MPI
// communicator is destroyed normally). Ranks come from MPI itself; when `expected` comes from a
// launcher, a different rank or world size is an error (the MPI backend needs mpirun).
// Throws when attnlab was built without MPI.
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchEnv* expected = nullptr);

// NCCL on ctx's CUDA device (choose it with cuda_device_for_local_rank before creating ctx).
// Rank 0 creates the NCCL unique id and hands it to every rank through the TCP rendezvous at
// env.master_addr:master_port, which also checks world size and config hash. Throws when
// attnlab was built without NCCL.
struct NcclOptions {
  uint64_t config_hash = 0;
  double rendezvous_timeout_s = 300;
};
std::unique_ptr<Communicator> make_nccl_communicator(const Ctx& ctx, const LaunchEnv& env,
                                                     const NcclOptions& opt = {});

// The CUDA device of a rank: its local rank when that many devices are visible, device 0 when
// exactly one is (the launcher bound one GPU per process, e.g. CUDA_VISIBLE_DEVICES per rank).
// Throws naming both numbers otherwise.
int cuda_device_for_local_rank(int local_rank, int visible_devices);

// auto: world size 1 -> single; CUDA ctx -> nccl; CPU ctx -> mpi.
Backend resolve_backend(Backend requested, const LaunchEnv& env, const Ctx& ctx);
std::unique_ptr<Communicator> make_communicator(Backend requested, const LaunchEnv& env, const Ctx& ctx,
                                                const NcclOptions& nccl = {});

}  // namespace attnlab::dist
