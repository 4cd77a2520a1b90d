// The GPU side of the core: context creation, copies, and that Philox gives the same stream on
// the device as on the host (and as cuRAND's Philox4_32_10 with the same key and counter).
#include <curand_kernel.h>

#include "core/rng.h"
#include "cuda/common.cuh"
#include "support/testing.h"

namespace attnlab::test {

namespace {
__global__ void philox_kernel(uint32_t* out, uint64_t seed, uint64_t offset, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = philox_u32(seed, offset, i);
}
__global__ void curand_kernel(uint32_t* out, uint64_t seed, int nquads) {
  int q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= nquads) return;
  curandStatePhilox4_32_10_t st;
  curand_init(seed, 0, uint64_t(q) * 4, &st);
  uint4 r = curand4(&st);
  out[4 * q] = r.x;
  out[4 * q + 1] = r.y;
  out[4 * q + 2] = r.z;
  out[4 * q + 3] = r.w;
}
}  // namespace

TEST(CoreGpu, PhiloxSameStreamOnHostAndDevice) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& c = gpu_ctx();
  const int n = 4099;
  const uint64_t seed = 0x1234abcd5678ull, offset = 17;
  Buffer d(Device::cuda, DType::u32, {n});
  philox_kernel<<<(n + 255) / 256, 256, 0, cuda::stream_of(c)>>>(static_cast<uint32_t*>(d.t().data), seed, offset, n);
  CUDA_CHECK_LAUNCH();
  std::vector<uint32_t> got(n);
  CUDA_CHECK(cudaMemcpy(got.data(), d.t().data, n * 4, cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], philox_u32(seed, offset, i)) << i;
}

TEST(CoreGpu, PhiloxMatchesCurand) {
  ATTNLAB_REQUIRE_GPU();
  const int nquads = 257;
  const uint64_t seed = 987654321ull;
  uint32_t* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, nquads * 16));
  curand_kernel<<<(nquads + 127) / 128, 128>>>(d, seed, nquads);
  CUDA_CHECK_LAUNCH();
  std::vector<uint32_t> got(nquads * 4);
  CUDA_CHECK(cudaMemcpy(got.data(), d, nquads * 16, cudaMemcpyDeviceToHost));
  cudaFree(d);
  for (int i = 0; i < nquads * 4; ++i) ASSERT_EQ(got[i], philox_u32(seed, 0, i)) << i;
}

TEST(CoreGpu, CopiesAndPoisonRoundTrip) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& c = gpu_ctx();
  auto v = rand_uniform(1031, -3, 3, 9);
  for (DType dt : {DType::f32, DType::bf16}) {
    Buffer b = make_tensor(Device::cuda, dt, {1031}, v);
    EXPECT_EQ(to_host_f64(c, b.t()), round_as(dt, v));
    poison_tensor(c, b.t());
    for (double x : to_host_f64(c, b.t())) ASSERT_TRUE(std::isnan(x));
  }
  CudaDeviceInfo info = cuda_device_info(0);
  EXPECT_GT(info.sm_count, 0);
  EXPECT_GT(info.l2_bytes, 0u);
}

}  // namespace attnlab::test
