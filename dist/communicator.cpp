// The Communicator front end shared by every backend (argument checks, handles, choosing a
// backend) and the world-size-1 backend.
#include "dist/communicator.h"

#include <cstring>

#include "dist/launch_env.h"
#include "core/error.h"
#include "core/log.h"

#if ATTNLAB_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace attnlab::dist {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::auto_select: return "auto";
    case Backend::single: return "single";
    case Backend::mpi: return "mpi";
    case Backend::nccl: return "nccl";
  }
  return "?";
}

Backend backend_from_name(const std::string& name) {
  for (Backend b : {Backend::auto_select, Backend::single, Backend::mpi, Backend::nccl})
    if (name == backend_name(b)) return b;
  FAIL_WITH("unknown communicator backend '", name, "': expected auto, single, mpi or nccl");
}

// ---- handles --------------------------------------------------------------------------------

void CommHandle::wait_quietly() noexcept {
  if (!owner_) return;
  try {
    wait();
  } catch (const std::exception& e) {
    log_error("a collective whose handle was dropped failed: ", e.what());
  }
}

CommHandle::~CommHandle() { wait_quietly(); }

CommHandle& CommHandle::operator=(CommHandle&& o) noexcept {
  if (this != &o) {
    wait_quietly();
    owner_ = o.owner_;
    slot_ = o.slot_;
    o.owner_ = nullptr;
  }
  return *this;
}

void CommHandle::wait() {
  if (!owner_) return;
  Communicator* c = owner_;
  owner_ = nullptr;  // the backend frees the slot even when finishing throws
  c->finish(slot_, false);
}

void CommHandle::synchronize() {
  if (!owner_) return;
  Communicator* c = owner_;
  owner_ = nullptr;
  c->finish(slot_, true);
}

bool CommHandle::test() {
  if (!owner_) return true;
  Communicator* c = owner_;
  owner_ = nullptr;
  if (c->poll(slot_)) return true;
  owner_ = c;
  return false;
}

// ---- argument checks ------------------------------------------------------------------------

namespace {

bool overlap(const Tensor& a, const Tensor& b) {
  auto* pa = static_cast<const char*>(a.data);
  auto* pb = static_cast<const char*>(b.data);
  return pa < pb + b.bytes() && pb < pa + a.bytes();
}

void check_operand(const Communicator& c, const char* op, const char* role, const Tensor& t) {
  const DType dt = t.dtype;
  CHECK(dt == DType::f32 || dt == DType::bf16 || dt == DType::f64 || dt == DType::i32, op, ": ", role, " '",
        t.name, "' is ", dtype_name(dt), "; collectives take f32, bf16, f64 or i32");
  CHECK(t.device == c.device(), op, ": ", role, " '", t.name, "' is on ", device_name(t.device), " but the ",
        backend_name(c.backend()), " communicator works on ", device_name(c.device()), " tensors");
  CHECK(t.defined() || t.numel() == 0, op, ": ", role, " '", t.name, "' has no storage");
}

void check_pair(const Communicator& c, const char* op, const Tensor& send, const Tensor& recv) {
  check_operand(c, op, "send", send);
  check_operand(c, op, "recv", recv);
  CHECK(send.dtype == recv.dtype, op, ": send '", send.name, "' is ", dtype_name(send.dtype), ", recv '",
        recv.name, "' is ", dtype_name(recv.dtype));
}

}  // namespace

CommHandle Communicator::all_reduce_sum_async(const Tensor& send, const Tensor& recv) {
  check_pair(*this, "all_reduce_sum", send, recv);
  CHECK(send.numel() == recv.numel(), "all_reduce_sum: send '", send.name, "' has ", send.numel(),
        " elements, recv '", recv.name, "' has ", recv.numel());
  CHECK(send.data == recv.data || !overlap(send, recv),
        "all_reduce_sum: send and recv partially overlap; pass the same tensor for in place");
  if (send.numel() == 0) return {};
  return do_all_reduce(send, recv);
}

CommHandle Communicator::reduce_scatter_sum_async(const Tensor& send, const Tensor& recv) {
  check_pair(*this, "reduce_scatter_sum", send, recv);
  CHECK(send.numel() == recv.numel() * world_size_, "reduce_scatter_sum: send '", send.name, "' has ",
        send.numel(), " elements; expected world size ", world_size_, " x recv '", recv.name, "' (", recv.numel(),
        ")");
  const bool in_place = recv.data == static_cast<char*>(send.data) + size_t(rank_) * recv.bytes();
  CHECK(in_place || !overlap(send, recv), "reduce_scatter_sum: recv overlaps send other than as this rank's "
        "shard (in place means recv == send + rank * n)");
  if (recv.numel() == 0) return {};
  return do_reduce_scatter(send, recv);
}

CommHandle Communicator::all_gather_async(const Tensor& send, const Tensor& recv) {
  check_pair(*this, "all_gather", send, recv);
  CHECK(recv.numel() == send.numel() * world_size_, "all_gather: recv '", recv.name, "' has ", recv.numel(),
        " elements; expected world size ", world_size_, " x send '", send.name, "' (", send.numel(), ")");
  const bool in_place = send.data == static_cast<char*>(recv.data) + size_t(rank_) * send.bytes();
  CHECK(in_place || !overlap(send, recv), "all_gather: send overlaps recv other than as this rank's slot "
        "(in place means send == recv + rank * n)");
  if (send.numel() == 0) return {};
  return do_all_gather(send, recv);
}

CommHandle Communicator::broadcast_async(const Tensor& buf, int root) {
  check_operand(*this, "broadcast", "buf", buf);
  CHECK(root >= 0 && root < world_size_, "broadcast: root ", root, " is not a rank of a world of ", world_size_);
  if (buf.numel() == 0) return {};
  return do_broadcast(buf, root);
}

std::string Communicator::describe() const {
  return detail::cat(backend_name(backend()), " communicator: rank ", rank_, " of ", world_size_, " (local ",
                     local_rank_, "), ", device_name(device_), " tensors");
}

// ---- world size 1 ----------------------------------------------------------------------------

namespace {

// Collectives of one rank are copies (or nothing, in place). On CUDA the copies are queued on the
// ctx stream, so the compute stream is ordered after them by construction.
class SingleProcessCommunicator final : public Communicator {
 public:
  explicit SingleProcessCommunicator(const Ctx& ctx) : Communicator(ctx.device, 0, 1, 0), ctx_(ctx) {}
  Backend backend() const override { return Backend::single; }
  void barrier() override {}
  void synchronize() override { ctx_.synchronize(); }

 protected:
  CommHandle do_all_reduce(const Tensor& send, const Tensor& recv) override { return copy(send, recv); }
  CommHandle do_reduce_scatter(const Tensor& send, const Tensor& recv) override { return copy(send, recv); }
  CommHandle do_all_gather(const Tensor& send, const Tensor& recv) override { return copy(send, recv); }
  CommHandle do_broadcast(const Tensor&, int) override { return {}; }

  // Slot 0 stands for "the copies queued on the ctx stream so far".
  void finish(int, bool host_sync) override {
    if (host_sync) ctx_.synchronize();
  }
  bool poll(int) override {
#if ATTNLAB_WITH_CUDA
    cudaError_t e = cudaStreamQuery(static_cast<cudaStream_t>(ctx_.stream));
    if (e == cudaErrorNotReady) return false;
    CUDA_CHECK(e);
#endif
    return true;
  }

 private:
  CommHandle copy(const Tensor& src, const Tensor& dst) {
    if (src.data == dst.data) return {};
    if (device_ == Device::cpu) {
      std::memcpy(dst.data, src.data, src.bytes());
      return {};
    }
#if ATTNLAB_WITH_CUDA
    CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice,
                               static_cast<cudaStream_t>(ctx_.stream)));
    return make_handle(0);
#else
    FAIL_WITH("a CUDA tensor reached the single-process communicator, but attnlab was built without CUDA");
#endif
  }

  Ctx ctx_;
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator(const Ctx& ctx) {
  return std::make_unique<SingleProcessCommunicator>(ctx);
}

#if !ATTNLAB_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchEnv*) {
  FAIL_WITH("the MPI backend is not built: attnlab was configured without MPI (install OpenMPI, e.g. "
            "libopenmpi-dev, and re-run cmake with -DATTNLAB_MPI=ON)");
}
#endif

// ---- choosing a backend ----------------------------------------------------------------------

int cuda_device_for_local_rank(int local_rank, int visible_devices) {
  CHECK(visible_devices > 0, "no CUDA device is visible to this rank");
  if (local_rank < visible_devices) return local_rank;
  if (visible_devices == 1) return 0;
  FAIL_WITH("local rank ", local_rank, " needs CUDA device ", local_rank, " but this process sees ", visible_devices,
            " devices: start at most ", visible_devices, " ranks per node, or give each rank one GPU "
            "(CUDA_VISIBLE_DEVICES)");
}

Backend resolve_backend(Backend requested, const LaunchEnv& env, const Ctx& ctx) {
  if (requested != Backend::auto_select) return requested;
  if (env.world_size == 1) return Backend::single;
  return ctx.is_cuda() ? Backend::nccl : Backend::mpi;
}

std::unique_ptr<Communicator> make_communicator(Backend requested, const LaunchEnv& env, const Ctx& ctx,
                                                const NcclOptions& nccl) {
  const Backend b = resolve_backend(requested, env, ctx);
  switch (b) {
    case Backend::single:
      CHECK(env.world_size == 1, "the single-process backend runs one rank, but ", env.describe(),
            ": choose the nccl (GPU) or mpi (CPU) backend");
      return make_single_communicator(ctx);
    case Backend::mpi:
      CHECK(!ctx.is_cuda(), "the MPI backend works on host memory; this run is on CUDA: use the nccl backend");
      return make_mpi_communicator(&env);
    case Backend::nccl:
      CHECK(ctx.is_cuda(), "the NCCL backend needs a CUDA context; this run is on the CPU: use the mpi backend");
      return make_nccl_communicator(ctx, env, nccl);
    case Backend::auto_select: break;
  }
  FAIL_WITH("no communicator backend resolved");
}

}  // namespace attnlab::dist
