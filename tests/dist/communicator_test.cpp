// The Communicator front end (argument checks, in-place rules, handles) through a recording
// backend with world size 4, the world-size-1 backend on the CPU, and backend selection.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/launch_env.h"
#include "core/error.h"
#include "support/testing.h"

namespace attnlab::dist {
namespace {

using test::cpu_ctx;
using test::make_poisoned;
using test::make_tensor;
using test::rand_uniform;

// Records what reaches the backend; its handles count finishes and polls.
class RecordingCommunicator final : public Communicator {
 public:
  RecordingCommunicator(int rank, int world) : Communicator(Device::cpu, rank, world, rank) {}
  Backend backend() const override { return Backend::mpi; }
  void barrier() override {}
  void synchronize() override {}

  std::vector<std::string> calls;
  int finished = 0, host_synced = 0, polls = 0;
  bool complete = false;  // what poll() reports

 protected:
  CommHandle do_all_reduce(const Tensor&, const Tensor&) override { return record("all_reduce"); }
  CommHandle do_reduce_scatter(const Tensor&, const Tensor&) override { return record("reduce_scatter"); }
  CommHandle do_all_gather(const Tensor&, const Tensor&) override { return record("all_gather"); }
  CommHandle do_broadcast(const Tensor&, int root) override { return record("broadcast " + std::to_string(root)); }
  void finish(int, bool host_sync) override {
    ++finished;
    host_synced += host_sync;
  }
  bool poll(int) override {
    ++polls;
    return complete;
  }

 private:
  CommHandle record(const std::string& what) {
    calls.push_back(what);
    return make_handle(int(calls.size()));
  }
};

Tensor view(const Buffer& b, int64_t begin, int64_t n) {
  const Tensor& t = b.t();
  return Tensor(static_cast<char*>(t.data) + size_t(begin) * dtype_size(t.dtype), t.dtype, t.device, {n}, "view");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(CommunicatorFrontEnd, InPlaceRulesFollowTheRank) {
  RecordingCommunicator c(/*rank=*/2, /*world=*/4);
  const int64_t n = 7;
  Buffer full(Device::cpu, DType::f32, {4 * n}, "full");
  Buffer shard(Device::cpu, DType::f32, {n}, "shard");
  // reduce_scatter in place: recv is this rank's shard of send.
  EXPECT_NO_THROW(c.reduce_scatter_sum(full.t(), view(full, 2 * n, n)));
  // Another rank's shard, or a misaligned one, overlaps without being "in place".
  std::string m = error_of([&] { c.reduce_scatter_sum(full.t(), view(full, 1 * n, n)); });
  EXPECT_NE(m.find("in place means recv == send + rank * n"), std::string::npos) << m;
  EXPECT_THROW(c.reduce_scatter_sum(full.t(), view(full, 2 * n + 1, n)), Error);
  EXPECT_NO_THROW(c.reduce_scatter_sum(full.t(), shard.t()));
  // all_gather in place: send is this rank's slot of recv.
  EXPECT_NO_THROW(c.all_gather(view(full, 2 * n, n), full.t()));
  m = error_of([&] { c.all_gather(view(full, 3 * n, n), full.t()); });
  EXPECT_NE(m.find("in place means send == recv + rank * n"), std::string::npos) << m;
  EXPECT_NO_THROW(c.all_gather(shard.t(), full.t()));
  // all_reduce: same tensor is in place; a partial overlap is not.
  EXPECT_NO_THROW(c.all_reduce_sum(shard.t()));
  EXPECT_THROW(c.all_reduce_sum(view(full, 0, n), view(full, 3, n)), Error);
  const std::vector<std::string> want = {"reduce_scatter", "reduce_scatter", "all_gather", "all_gather",
                                         "all_reduce"};
  EXPECT_EQ(c.calls, want);
  EXPECT_EQ(c.finished, 5);  // blocking variants wait on their handles
}

TEST(CommunicatorFrontEnd, CountsDtypesAndDevicesAreChecked) {
  RecordingCommunicator c(1, 3);
  Buffer a(Device::cpu, DType::f32, {6}, "a"), b(Device::cpu, DType::f32, {5}, "b");
  Buffer d(Device::cpu, DType::f64, {6}, "d"), h(Device::cpu, DType::f16, {6}, "h");
  std::string m = error_of([&] { c.all_reduce_sum(a.t(), b.t()); });
  EXPECT_NE(m.find("send 'a' has 6 elements, recv 'b' has 5"), std::string::npos) << m;
  m = error_of([&] { c.all_reduce_sum(a.t(), d.t()); });
  EXPECT_NE(m.find("send 'a' is f32, recv 'd' is f64"), std::string::npos) << m;
  m = error_of([&] { c.all_reduce_sum(h.t()); });
  EXPECT_NE(m.find("collectives take f32, bf16, f64 or i32"), std::string::npos) << m;
  m = error_of([&] { c.reduce_scatter_sum(a.t(), b.t()); });
  EXPECT_NE(m.find("expected world size 3 x recv 'b' (5)"), std::string::npos) << m;
  Buffer two(Device::cpu, DType::f32, {2}, "two");
  EXPECT_NO_THROW(c.reduce_scatter_sum(a.t(), two.t()));
  m = error_of([&] { c.all_gather(two.t(), b.t()); });
  EXPECT_NE(m.find("expected world size 3 x send 'two' (2)"), std::string::npos) << m;
  m = error_of([&] { c.broadcast(a.t(), 3); });
  EXPECT_NE(m.find("root 3 is not a rank of a world of 3"), std::string::npos) << m;
  EXPECT_THROW(c.broadcast(a.t(), -1), Error);
  // A CUDA tensor on a CPU communicator is refused before anything touches its (bogus) pointer.
  Tensor gpu(reinterpret_cast<void*>(0x1000), DType::f32, Device::cuda, {6}, "gpu");
  m = error_of([&] { c.all_reduce_sum(gpu); });
  EXPECT_NE(m.find("'gpu' is on cuda"), std::string::npos) << m;
  c.broadcast(a.t(), 2);
  const std::vector<std::string> want = {"reduce_scatter", "broadcast 2"};
  EXPECT_EQ(c.calls, want);
}

TEST(CommunicatorFrontEnd, EmptyTensorsSkipTheBackend) {
  RecordingCommunicator c(0, 2);
  Tensor empty(nullptr, DType::f32, Device::cpu, {0}, "empty");
  CommHandle h = c.all_reduce_sum_async(empty, empty);
  EXPECT_FALSE(h.pending());
  EXPECT_TRUE(h.test());
  c.all_gather(empty, empty);
  c.broadcast(empty, 1);
  EXPECT_TRUE(c.calls.empty());
}

TEST(CommunicatorFrontEnd, HandlesWaitOnceWhateverTheRoute) {
  RecordingCommunicator c(0, 2);
  Buffer a(Device::cpu, DType::f32, {4}, "a");
  {
    CommHandle h = c.all_reduce_sum_async(a.t(), a.t());
    EXPECT_TRUE(h.pending());
    h.wait();
    EXPECT_FALSE(h.pending());
    h.wait();  // no second finish
  }
  EXPECT_EQ(c.finished, 1);
  { CommHandle dropped = c.all_reduce_sum_async(a.t(), a.t()); }  // destroyed pending: waits
  EXPECT_EQ(c.finished, 2);
  {
    CommHandle h = c.all_reduce_sum_async(a.t(), a.t());
    CommHandle moved = std::move(h);
    EXPECT_FALSE(h.pending());
    EXPECT_TRUE(moved.pending());
    moved.synchronize();
  }
  EXPECT_EQ(c.finished, 3);
  EXPECT_EQ(c.host_synced, 1);
  {
    CommHandle h = c.all_reduce_sum_async(a.t(), a.t());
    EXPECT_FALSE(h.test());
    EXPECT_TRUE(h.pending());
    c.complete = true;
    EXPECT_TRUE(h.test());  // completed by polling: the backend freed it, nothing left to wait
    EXPECT_FALSE(h.pending());
    CommHandle other = c.all_reduce_sum_async(a.t(), a.t());
    other = c.all_reduce_sum_async(a.t(), a.t());  // assigning over a pending handle waits on it
    EXPECT_EQ(c.finished, 4);
  }
  EXPECT_EQ(c.finished, 5);
  EXPECT_EQ(c.polls, 2);
}

TEST(SingleProcessCommunicator, CollectivesOfOneRankAreCopies) {
  auto comm = make_single_communicator(cpu_ctx());
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->backend(), Backend::single);
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const std::vector<double> v = test::round_as(dt, rand_uniform(37, -3, 3, 5));
    Buffer send = make_tensor(Device::cpu, dt, {37}, v, "send");
    Buffer recv = make_poisoned(Device::cpu, dt, {37}, "recv");
    comm->all_reduce_sum(send.t(), recv.t());
    EXPECT_EQ(to_host_f64(cpu_ctx(), recv.t()), v);
    Buffer rs = make_poisoned(Device::cpu, dt, {37}, "rs");
    comm->reduce_scatter_sum(send.t(), rs.t());
    EXPECT_EQ(to_host_f64(cpu_ctx(), rs.t()), v);
    Buffer ag = make_poisoned(Device::cpu, dt, {37}, "ag");
    CommHandle h = comm->all_gather_async(send.t(), ag.t());
    EXPECT_TRUE(h.test());
    EXPECT_EQ(to_host_f64(cpu_ctx(), ag.t()), v);
    comm->all_reduce_sum(send.t());  // in place: the data stays
    comm->broadcast(send.t(), 0);
    EXPECT_EQ(to_host_f64(cpu_ctx(), send.t()), v);
  }
  Buffer ids = test::make_ids(Device::cpu, {5}, {3, -1, 7, 2, 9}, "ids");
  Buffer out = make_poisoned(Device::cpu, DType::i32, {5}, "out");
  comm->all_reduce_sum(ids.t(), out.t());
  EXPECT_EQ(to_host_f64(cpu_ctx(), out.t()), (std::vector<double>{3, -1, 7, 2, 9}));
  EXPECT_THROW(comm->broadcast(ids.t(), 1), Error);
  comm->barrier();
  comm->synchronize();
}

TEST(CommunicatorChoice, BackendNamesAndResolution) {
  for (Backend b : {Backend::auto_select, Backend::single, Backend::mpi, Backend::nccl})
    EXPECT_EQ(backend_from_name(backend_name(b)), b);
  std::string m = error_of([] { backend_from_name("gloo"); });
  EXPECT_NE(m.find("expected auto, single, mpi or nccl"), std::string::npos) << m;

  LaunchEnv one, four;
  four.world_size = 4;
  four.rank = 1;
  four.source = LaunchSource::torch_env;
  Ctx gpu_like = Ctx::make_cpu();
  gpu_like.device = Device::cuda;  // only its device is read by resolve_backend
  EXPECT_EQ(resolve_backend(Backend::auto_select, one, cpu_ctx()), Backend::single);
  EXPECT_EQ(resolve_backend(Backend::auto_select, one, gpu_like), Backend::single);
  EXPECT_EQ(resolve_backend(Backend::auto_select, four, cpu_ctx()), Backend::mpi);
  EXPECT_EQ(resolve_backend(Backend::auto_select, four, gpu_like), Backend::nccl);
  EXPECT_EQ(resolve_backend(Backend::nccl, one, gpu_like), Backend::nccl);

  EXPECT_EQ(make_communicator(Backend::auto_select, one, cpu_ctx())->backend(), Backend::single);
  m = error_of([&] { make_communicator(Backend::single, four, cpu_ctx()); });
  EXPECT_NE(m.find("runs one rank"), std::string::npos) << m;
  m = error_of([&] { make_communicator(Backend::nccl, four, cpu_ctx()); });
  EXPECT_NE(m.find("needs a CUDA context"), std::string::npos) << m;
  m = error_of([&] { make_communicator(Backend::mpi, four, gpu_like); });
  EXPECT_NE(m.find("works on host memory"), std::string::npos) << m;
}

TEST(CommunicatorChoice, CudaDeviceForLocalRank) {
  EXPECT_EQ(cuda_device_for_local_rank(0, 8), 0);
  EXPECT_EQ(cuda_device_for_local_rank(5, 8), 5);
  EXPECT_EQ(cuda_device_for_local_rank(3, 1), 0);  // one GPU bound per process
  std::string m = error_of([] { cuda_device_for_local_rank(5, 4); });
  EXPECT_NE(m.find("local rank 5 needs CUDA device 5 but this process sees 4 devices"), std::string::npos) << m;
  EXPECT_THROW(cuda_device_for_local_rank(0, 0), Error);
}

}  // namespace
}  // namespace attnlab::dist
