// The NCCL backend: collectives on CUDA memory, on a dedicated high-priority stream.
//
// Ordering with the compute stream (the ctx stream) goes through events, never the host:
//   before a collective: record `ready_` on the compute stream, the comm stream waits on it;
//   after it:            record the slot's event on the comm stream; handle.wait() makes the
//                        compute stream wait on that event.
// Compiled always; its content only when CMake found NCCL (ATTNLAB_WITH_NCCL).
#include "dist/communicator.h"
#include "dist/launch_env.h"
#include "core/error.h"

#if ATTNLAB_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#include <nvtx3/nvToolsExtCudaRt.h>

#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "dist/rendezvous.h"
#include "core/log.h"

namespace attnlab::dist {

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    default: FAIL_WITH("NCCL communicator: no NCCL datatype for ", dtype_name(t));
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Ctx& ctx, int rank, int world, int local_rank, const ncclUniqueId& id)
      : Communicator(Device::cuda, rank, world, local_rank), ctx_(ctx) {
    try {
      create(world, id);
    } catch (...) {
      teardown(/*abort=*/true);
      throw;
    }
  }

  // Destroyed while an exception propagates: abort instead of destroy, since destroying waits
  // for collectives that peers may never join.
  ~NcclCommunicator() override { teardown(std::uncaught_exceptions() > 0); }

  Backend backend() const override { return Backend::nccl; }

  // NCCL has no barrier: a one-word all-reduce that the host waits for.
  void barrier() override {
    after_compute();
    NCCL_CHECK(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, comm_stream_));
    CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
    check_async_error();
  }

  void synchronize() override {
    CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
    check_async_error();
  }

 private:
  void create(int world, const ncclUniqueId& id) {
    CUDA_CHECK(cudaSetDevice(ctx_.device_index));
    compute_ = static_cast<cudaStream_t>(ctx_.stream);
    int least = 0, greatest = 0;
    CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    // Highest priority: a gradient bucket's all-reduce should not queue behind backward kernels.
    CUDA_CHECK(cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, greatest));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    CUDA_CHECK(cudaMalloc(&barrier_word_, sizeof(int32_t)));
    CUDA_CHECK(cudaMemset(barrier_word_, 0, sizeof(int32_t)));
    std::string comm_name = detail::cat("nccl rank ", rank_);
    std::string compute_name = detail::cat("compute rank ", rank_);
    nvtxNameCudaStreamA(comm_stream_, comm_name.c_str());
    nvtxNameCudaStreamA(compute_, compute_name.c_str());
    NCCL_CHECK(ncclCommInitRank(&comm_, world, id, rank_));
  }

  // Never throws: errors at teardown are ignored.
  void teardown(bool abort) noexcept {
    cudaSetDevice(ctx_.device_index);
    if (comm_) {
      if (abort) {
        ncclCommAbort(comm_);
      } else {
        cudaStreamSynchronize(comm_stream_);
        ncclCommDestroy(comm_);
      }
      comm_ = nullptr;
    }
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    events_.clear();
    if (ready_) cudaEventDestroy(ready_);
    if (barrier_word_) cudaFree(barrier_word_);
    if (comm_stream_) cudaStreamDestroy(comm_stream_);
    ready_ = nullptr;
    barrier_word_ = nullptr;
    comm_stream_ = nullptr;
  }

 protected:
  CommHandle do_all_reduce(const Tensor& send, const Tensor& recv) override {
    after_compute();
    NCCL_CHECK(ncclAllReduce(send.data, recv.data, size_t(recv.numel()), nccl_type(recv.dtype), ncclSum, comm_,
                             comm_stream_));
    return completion();
  }
  CommHandle do_reduce_scatter(const Tensor& send, const Tensor& recv) override {
    after_compute();
    NCCL_CHECK(ncclReduceScatter(send.data, recv.data, size_t(recv.numel()), nccl_type(recv.dtype), ncclSum, comm_,
                                 comm_stream_));
    return completion();
  }
  CommHandle do_all_gather(const Tensor& send, const Tensor& recv) override {
    after_compute();
    NCCL_CHECK(ncclAllGather(send.data, recv.data, size_t(send.numel()), nccl_type(send.dtype), comm_,
                             comm_stream_));
    return completion();
  }
  CommHandle do_broadcast(const Tensor& buf, int root) override {
    after_compute();
    NCCL_CHECK(ncclBroadcast(buf.data, buf.data, size_t(buf.numel()), nccl_type(buf.dtype), root, comm_,
                             comm_stream_));
    return completion();
  }

  void finish(int slot, bool host_sync) override {
    Releaser release{this, slot};
    if (host_sync) CUDA_CHECK(cudaEventSynchronize(events_[slot]));
    else CUDA_CHECK(cudaStreamWaitEvent(compute_, events_[slot], 0));
  }

  bool poll(int slot) override {
    cudaError_t e = cudaEventQuery(events_[slot]);
    if (e == cudaErrorNotReady) {
      check_async_error();
      return false;
    }
    release(slot);
    CUDA_CHECK(e);
    return true;
  }

 private:
  struct Releaser {
    NcclCommunicator* c;
    int slot;
    ~Releaser() { c->release(slot); }
  };

  // The comm stream starts a collective only after the compute work queued so far.
  void after_compute() {
    CUDA_CHECK(cudaEventRecord(ready_, compute_));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready_, 0));
  }

  // Events are reused through a free list: only more collectives in flight than ever before
  // create one.
  CommHandle completion() {
    int slot;
    if (free_.empty()) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      slot = int(events_.size());
      events_.push_back(e);
    } else {
      slot = free_.back();
      free_.pop_back();
    }
    cudaError_t rc = cudaEventRecord(events_[slot], comm_stream_);
    if (rc != cudaSuccess) release(slot);
    CUDA_CHECK(rc);
    return make_handle(slot);
  }

  void release(int slot) { free_.push_back(slot); }

  void check_async_error() {
    ncclResult_t async = ncclSuccess;
    NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    if (async != ncclSuccess)
      FAIL_WITH("NCCL reported an asynchronous error on rank ", rank_, ": ", ncclGetErrorString(async),
                " (a peer failed or the network broke; see the other ranks' logs)");
  }

  Ctx ctx_;
  cudaStream_t compute_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  int32_t* barrier_word_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::vector<cudaEvent_t> events_;
  std::vector<int> free_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const Ctx& ctx, const LaunchEnv& env, const NcclOptions& opt) {
  CHECK(ctx.is_cuda(), "the NCCL communicator needs a CUDA context");
  // The rank's device is current before any other CUDA or NCCL call of this process.
  CUDA_CHECK(cudaSetDevice(ctx.device_index));
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  const bool meet = env.world_size > 1 || (!env.master_addr.empty() && env.master_port > 0);
  if (env.rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  if (meet) {
    env.require_master();
    RendezvousOptions r;
    r.host = env.master_addr;
    r.port = env.master_port;
    r.rank = env.rank;
    r.world_size = env.world_size;
    r.config_hash = opt.config_hash;
    r.timeout_s = opt.rendezvous_timeout_s;
    std::vector<uint8_t> mine;
    if (env.rank == 0) mine.assign(reinterpret_cast<const uint8_t*>(&id), reinterpret_cast<const uint8_t*>(&id) + sizeof id);
    std::vector<uint8_t> got = rendezvous(r, mine);
    CHECK(got.size() == sizeof id, "rank 0 sent ", got.size(), " bytes at the rendezvous, not an NCCL unique id (",
          sizeof id, " bytes): is rank 0 running the NCCL backend of the same attnlab build?");
    std::memcpy(&id, got.data(), sizeof id);
  }
  auto c = std::make_unique<NcclCommunicator>(ctx, env.rank, env.world_size, env.local_rank, id);
  log_debug(c->describe(), " on cuda:", ctx.device_index);
  return c;
}

}  // namespace attnlab::dist

#else  // built without NCCL

namespace attnlab::dist {
std::unique_ptr<Communicator> make_nccl_communicator(const Ctx&, const LaunchEnv&, const NcclOptions&) {
  FAIL_WITH("the NCCL backend is not built: attnlab was configured without CUDA or without NCCL (libnccl-dev); "
            "on the CPU use the mpi backend");
}
}  // namespace attnlab::dist

#endif
