// The NCCL communicator with world size 1, created through the TCP rendezvous on loopback:
// every collective returns its input (out of place, in place, f32 and bf16), and the event
// ordering with the compute stream holds (a collective sees the compute work queued before it;
// compute work queued after handle.wait() sees its result).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "dist/launch_env.h"
#include "dist/rendezvous.h"
#include "core/error.h"
#include "support/testing.h"

#if ATTNLAB_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace attnlab::dist {
namespace {

using test::gpu_ctx;
using test::make_poisoned;
using test::make_tensor;
using test::rand_uniform;
using test::round_as;

#if ATTNLAB_WITH_NCCL
constexpr bool kWithNccl = true;
#else
constexpr bool kWithNccl = false;
#endif

#define REQUIRE_NCCL_GPU()                                                      \
  do {                                                                          \
    ATTNLAB_REQUIRE_GPU();                                                      \
    if (!kWithNccl) GTEST_SKIP() << "attnlab was built without NCCL";           \
  } while (0)

LaunchEnv loopback_world_of_one() {
  LaunchEnv env;
  env.rank = 0;
  env.world_size = 1;
  env.local_rank = 0;
  env.master_addr = "127.0.0.1";
  env.master_port = pick_free_loopback_port();
  return env;
}

std::unique_ptr<Communicator> make_comm() {
  NcclOptions o;
  o.config_hash = 0x0123456789abcdefull;
  o.rendezvous_timeout_s = 30;
  return make_nccl_communicator(gpu_ctx(), loopback_world_of_one(), o);
}

std::vector<double> read(const Tensor& t) { return to_host_f64(gpu_ctx(), t); }

TEST(NcclGpu, WorldOfOneAllReduceReturnsTheInput) {
  REQUIRE_NCCL_GPU();
  auto comm = make_comm();
  EXPECT_EQ(comm->backend(), Backend::nccl);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->device(), Device::cuda);
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t n = 1009;
    const std::vector<double> v = round_as(dt, rand_uniform(size_t(n), -2, 2, 41));
    Buffer send = make_tensor(Device::cuda, dt, {n}, v, "send");
    Buffer recv = make_poisoned(Device::cuda, dt, {n}, "recv");
    comm->all_reduce_sum(send.t(), recv.t());
    EXPECT_EQ(read(recv.t()), v);
    comm->all_reduce_sum(send.t());  // in place
    EXPECT_EQ(read(send.t()), v);
  }
  Buffer ids = test::make_ids(Device::cuda, {6}, {5, -4, 3, 2, 11, 7}, "ids");
  comm->all_reduce_sum(ids.t());
  EXPECT_EQ(read(ids.t()), (std::vector<double>{5, -4, 3, 2, 11, 7}));
  comm->barrier();
  comm->synchronize();
}

TEST(NcclGpu, WorldOfOneGatherScatterBroadcast) {
  REQUIRE_NCCL_GPU();
  auto comm = make_comm();
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t n = 613;
    const std::vector<double> v = round_as(dt, rand_uniform(size_t(n), 0.5, 3, 43));
    Buffer src = make_tensor(Device::cuda, dt, {n}, v, "src");
    Buffer gathered = make_poisoned(Device::cuda, dt, {n}, "gathered");
    comm->all_gather(src.t(), gathered.t());
    EXPECT_EQ(read(gathered.t()), v);
    Buffer scattered = make_poisoned(Device::cuda, dt, {n}, "scattered");
    comm->reduce_scatter_sum(src.t(), scattered.t());
    EXPECT_EQ(read(scattered.t()), v);
    // In place with world 1: the shard and the slot are the whole buffer.
    comm->reduce_scatter_sum(src.t(), src.t());
    comm->all_gather(src.t(), src.t());
    comm->broadcast(src.t(), 0);
    EXPECT_EQ(read(src.t()), v);
  }
  Buffer host(Device::cpu, DType::f32, {4}, "host");
  EXPECT_THROW(comm->all_reduce_sum(host.t()), Error);  // NCCL takes device memory only
  EXPECT_THROW(comm->broadcast(host.t(), 1), Error);
}

#if ATTNLAB_WITH_CUDA
TEST(NcclGpu, CollectivesAreOrderedWithTheComputeStream) {
  REQUIRE_NCCL_GPU();
  auto comm = make_comm();
  auto stream = static_cast<cudaStream_t>(gpu_ctx().stream);
  // Large enough that the copies take far longer than a launch: a missing dependency would let
  // the collective read `send` before the copy filled it, or the read-back run before the sum.
  const int64_t n = (int64_t(1) << 24) + 3;
  const std::vector<double> v = rand_uniform(size_t(n), 1, 2, 47);
  Buffer filled = make_tensor(Device::cuda, DType::f32, {n}, v, "filled");
  Buffer send = make_poisoned(Device::cuda, DType::f32, {n}, "send");
  Buffer recv = make_poisoned(Device::cuda, DType::f32, {n}, "recv");
  std::vector<float> back(size_t(n), 0.0f);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(cudaMemsetAsync(send.t().data, 0xFF, send.t().bytes(), stream), cudaSuccess);
    ASSERT_EQ(cudaMemsetAsync(recv.t().data, 0xFF, recv.t().bytes(), stream), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(send.t().data, filled.t().data, filled.t().bytes(), cudaMemcpyDeviceToDevice, stream),
              cudaSuccess);
    CommHandle h = comm->all_reduce_sum_async(send.t(), recv.t());  // no host sync since the copy
    h.wait();  // the compute stream waits for the collective; the host does not
    ASSERT_EQ(cudaMemcpyAsync(back.data(), recv.t().data, recv.t().bytes(), cudaMemcpyDeviceToHost, stream),
              cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::vector<double> got(back.begin(), back.end());
    ASSERT_EQ(got, round_as(DType::f32, v)) << "round " << round;
  }
  // Host-side completion: synchronize() on a handle, test() until done.
  CommHandle a = comm->all_reduce_sum_async(send.t(), recv.t());
  a.synchronize();
  EXPECT_FALSE(a.pending());
  CommHandle b = comm->all_gather_async(send.t(), recv.t());
  while (!b.test()) {
  }
  EXPECT_FALSE(b.pending());
  EXPECT_EQ(read(recv.t()), round_as(DType::f32, v));
}
#endif

TEST(NcclGpu, MakeCommunicatorChoosesNccl) {
  REQUIRE_NCCL_GPU();
  LaunchEnv env = loopback_world_of_one();
  auto comm = make_communicator(Backend::nccl, env, gpu_ctx());
  EXPECT_EQ(comm->backend(), Backend::nccl);
  // Auto with one rank takes the single-process path, on the same CUDA context.
  auto single = make_communicator(Backend::auto_select, env, gpu_ctx());
  EXPECT_EQ(single->backend(), Backend::single);
  EXPECT_EQ(single->device(), Device::cuda);
  const std::vector<double> v = rand_uniform(97, -1, 1, 53);
  Buffer src = make_tensor(Device::cuda, DType::f32, {97}, v, "src");
  Buffer dst = make_poisoned(Device::cuda, DType::f32, {97}, "dst");
  single->all_reduce_sum(src.t(), dst.t());
  EXPECT_EQ(read(dst.t()), round_as(DType::f32, v));
}

}  // namespace
}  // namespace attnlab::dist
