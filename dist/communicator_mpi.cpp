// The MPI backend: collectives on host memory over OpenMPI, the CPU backend's data parallelism.
// Compiled only when CMake finds MPI (the *_mpi.cpp glob).
//
// Every collective is a non-blocking MPI call (MPI_Iallreduce, ...) whose request sits in a slot
// until its handle waits; the blocking variants wait at once. OpenMPI progresses non-blocking
// collectives only inside MPI calls, so overlap with compute needs handle.test() now and then.
// bf16 travels as a 2-byte datatype and is summed by a user-defined MPI op (each pairwise sum
// rounds to bf16, as NCCL's bf16 sum does).
#include <mpi.h>

#include <climits>
#include <cstring>
#include <exception>
#include <mutex>
#include <vector>

#include "dist/communicator.h"
#include "dist/launch_env.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"

namespace attnlab::dist {

namespace {

std::string mpi_error_text(int rc) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) return detail::cat("MPI error ", rc);
  return std::string(s, size_t(len));
}

#define MPI_CHECK(expr)                                                                           \
  do {                                                                                            \
    int rc_ = (expr);                                                                             \
    if (rc_ != MPI_SUCCESS) throw ::attnlab::Error(__FILE__, __LINE__, #expr, mpi_error_text(rc_)); \
  } while (0)

// MPI is initialised once per process and can never be initialised again after MPI_Finalize, so
// the process-wide state counts live communicators and finalises after the last one (when this
// code initialised MPI; a host program that initialised it finalises it itself).
std::mutex g_mpi_mu;
int g_mpi_users = 0;
bool g_mpi_initialised_here = false;

void mpi_acquire() {
  std::lock_guard<std::mutex> lock(g_mpi_mu);
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  CHECK(!finalised, "MPI was already finalised in this process; it cannot be initialised again");
  if (!initialised) {
    int provided = 0;
    // SERIALIZED: the trainer may issue collectives from a helper thread, one at a time.
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
    g_mpi_initialised_here = true;
    if (provided < MPI_THREAD_SERIALIZED)
      log_debug("MPI provides thread level ", provided, " (< SERIALIZED): issue collectives from one thread");
  }
  ++g_mpi_users;
}

void mpi_release(bool finalise) {
  std::lock_guard<std::mutex> lock(g_mpi_mu);
  if (--g_mpi_users == 0 && g_mpi_initialised_here && finalise) {
    MPI_Finalize();
    g_mpi_initialised_here = false;
  }
}

void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const bf16*>(in);
  auto* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int world, int local_rank)
      : Communicator(Device::cpu, rank, world, local_rank), comm_(comm) {
    MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &bf16_type_));
    MPI_CHECK(MPI_Type_commit(&bf16_type_));
    MPI_CHECK(MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_op_));
  }

  // Destroyed while an exception propagates: MPI stays unfinalised, because OpenMPI's
  // MPI_Finalize synchronises with the other ranks, which may be waiting in a collective this
  // rank will never join; exiting lets mpirun stop them instead of every rank hanging.
  ~MpiCommunicator() override {
    const bool clean = std::uncaught_exceptions() == 0;
    if (clean) {
      for (size_t s = 0; s < slots_.size(); ++s)
        if (slots_[s].in_use && !slots_[s].completed) MPI_Wait(&slots_[s].request, MPI_STATUS_IGNORE);
      MPI_Op_free(&bf16_sum_op_);
      MPI_Type_free(&bf16_type_);
      MPI_Comm_free(&comm_);
    }
    mpi_release(clean);
  }

  Backend backend() const override { return Backend::mpi; }
  void barrier() override { MPI_CHECK(MPI_Barrier(comm_)); }
  void synchronize() override {
    for (size_t s = 0; s < slots_.size(); ++s)
      if (slots_[s].in_use && !slots_[s].completed) complete(int(s));
  }

 protected:
  CommHandle do_all_reduce(const Tensor& send, const Tensor& recv) override {
    const int n = count_of(recv, "all_reduce_sum");
    int slot = take_slot();
    const void* src = send.data == recv.data ? MPI_IN_PLACE : send.data;
    issue(slot, MPI_Iallreduce(src, recv.data, n, type_of(recv.dtype), op_of(recv.dtype), comm_,
                               &slots_[slot].request));
    return make_handle(slot);
  }

  CommHandle do_reduce_scatter(const Tensor& send, const Tensor& recv) override {
    const int n = count_of(recv, "reduce_scatter_sum");
    count_of(send, "reduce_scatter_sum");
    int slot = take_slot();
    Slot& s = slots_[slot];
    if (recv.data == static_cast<char*>(send.data) + size_t(rank_) * recv.bytes()) {
      // MPI's in-place form leaves the result at the start of the full buffer; our contract puts
      // it at this rank's shard, so it moves there on completion.
      if (rank_ != 0) s.move = {recv.data, send.data, recv.bytes()};
      issue(slot, MPI_Ireduce_scatter_block(MPI_IN_PLACE, send.data, n, type_of(recv.dtype), op_of(recv.dtype),
                                            comm_, &s.request));
    } else {
      issue(slot, MPI_Ireduce_scatter_block(send.data, recv.data, n, type_of(recv.dtype), op_of(recv.dtype), comm_,
                                            &s.request));
    }
    return make_handle(slot);
  }

  CommHandle do_all_gather(const Tensor& send, const Tensor& recv) override {
    const int n = count_of(send, "all_gather");
    count_of(recv, "all_gather");
    int slot = take_slot();
    const MPI_Datatype t = type_of(send.dtype);
    if (send.data == static_cast<char*>(recv.data) + size_t(rank_) * send.bytes())
      issue(slot, MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv.data, n, t, comm_, &slots_[slot].request));
    else
      issue(slot, MPI_Iallgather(send.data, n, t, recv.data, n, t, comm_, &slots_[slot].request));
    return make_handle(slot);
  }

  CommHandle do_broadcast(const Tensor& buf, int root) override {
    const int n = count_of(buf, "broadcast");
    int slot = take_slot();
    issue(slot, MPI_Ibcast(buf.data, n, type_of(buf.dtype), root, comm_, &slots_[slot].request));
    return make_handle(slot);
  }

  void finish(int slot, bool) override {
    Releaser release{this, slot};
    if (!slots_[slot].completed) complete(slot);
  }

  bool poll(int slot) override {
    Slot& s = slots_[slot];
    if (!s.completed) {
      int flag = 0;
      int rc = MPI_Test(&s.request, &flag, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) {
        release(slot);
        FAIL_WITH("MPI collective failed: ", mpi_error_text(rc));
      }
      if (!flag) return false;
      after_completion(s);
    }
    release(slot);
    return true;
  }

 private:
  struct Move {
    void* dst = nullptr;
    const void* src = nullptr;
    size_t bytes = 0;
  };
  struct Slot {
    MPI_Request request = MPI_REQUEST_NULL;
    bool in_use = false;
    bool completed = false;
    Move move;
  };
  struct Releaser {
    MpiCommunicator* c;
    int slot;
    ~Releaser() { c->release(slot); }
  };

  int count_of(const Tensor& t, const char* op) const {
    CHECK(t.numel() <= INT_MAX, op, ": '", t.name, "' has ", t.numel(), " elements; MPI counts are int (at most ",
          INT_MAX, "): split it into buckets");
    return int(t.numel());
  }
  MPI_Datatype type_of(DType t) const {
    switch (t) {
      case DType::f32: return MPI_FLOAT;
      case DType::f64: return MPI_DOUBLE;
      case DType::i32: return MPI_INT32_T;
      case DType::bf16: return bf16_type_;
      default: FAIL_WITH("MPI communicator: no MPI datatype for ", dtype_name(t));
    }
  }
  MPI_Op op_of(DType t) const { return t == DType::bf16 ? bf16_sum_op_ : MPI_SUM; }

  int take_slot() {
    int s;
    if (free_.empty()) {
      s = int(slots_.size());
      slots_.emplace_back();
    } else {
      s = free_.back();
      free_.pop_back();
    }
    slots_[s] = Slot{};
    slots_[s].in_use = true;
    return s;
  }
  void release(int slot) {
    slots_[slot].in_use = false;
    free_.push_back(slot);
  }
  void issue(int slot, int rc) {
    if (rc == MPI_SUCCESS) return;
    release(slot);
    FAIL_WITH("MPI collective could not start: ", mpi_error_text(rc));
  }
  void complete(int slot) {
    Slot& s = slots_[slot];
    MPI_CHECK(MPI_Wait(&s.request, MPI_STATUS_IGNORE));
    after_completion(s);
  }
  static void after_completion(Slot& s) {
    if (s.move.bytes) std::memcpy(s.move.dst, s.move.src, s.move.bytes);
    s.completed = true;
  }

  MPI_Comm comm_;
  MPI_Datatype bf16_type_ = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum_op_ = MPI_OP_NULL;
  std::vector<Slot> slots_;
  std::vector<int> free_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchEnv* expected) {
  mpi_acquire();
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, world = 1, local = 0;
  try {
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
    // Errors come back as codes (and become attnlab::Error) instead of aborting the job.
    MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &world));
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &local));
    MPI_Comm_free(&node);
  } catch (...) {
    mpi_release(false);
    throw;
  }
  auto c = std::make_unique<MpiCommunicator>(comm, rank, world, local);
  if (expected && expected->source != LaunchSource::single &&
      (expected->world_size != world || expected->rank != rank))
    FAIL_WITH("MPI reports rank ", rank, " of ", world, " but the launcher says ", expected->describe(),
              ": the MPI backend needs its processes started by mpirun (or srun with PMIx), not by `attnlab "
              "launch` or torchrun");
  return c;
}

}  // namespace attnlab::dist
