#include "core/ctx.h"

#include "core/error.h"

#if ATTNLAB_WITH_CUDA
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

namespace attnlab {

Ctx Ctx::make_cpu(uint64_t seed) {
  Ctx c;
  c.device = Device::cpu;
  c.seed = seed;
  return c;
}

#if ATTNLAB_WITH_CUDA
namespace {
struct CudaResources {
  int dev = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  ~CudaResources() {
    // Destructors never throw: errors at teardown are ignored.
    cudaSetDevice(dev);
    if (workspace) cudaFree(workspace);
    if (lt) cublasLtDestroy(lt);
    if (cublas) cublasDestroy(cublas);
    if (stream) cudaStreamDestroy(stream);
  }
};
}  // namespace

Ctx Ctx::make_cuda(int device_index, uint64_t seed) {
  CudaStatus st = cuda_status();
  if (!st.usable) FAIL_WITH("CUDA is not usable: ", st.reason);
  CHECK(device_index >= 0 && device_index < st.device_count, "CUDA device ", device_index,
        " requested but ", st.device_count, " found");
  auto res = std::make_shared<CudaResources>();
  res->dev = device_index;
  CUDA_CHECK(cudaSetDevice(device_index));
  CUDA_CHECK(cudaStreamCreateWithFlags(&res->stream, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasCreate(&res->cublas));
  CUBLAS_CHECK(cublasSetStream(res->cublas, res->stream));
  CUBLAS_CHECK(cublasLtCreate(&res->lt));
  // 32 MiB: what cuBLASLt's Hopper kernels ask for at most.
  const size_t ws = size_t(32) << 20;
  CUDA_CHECK(cudaMalloc(&res->workspace, ws));
  CUBLAS_CHECK(cublasSetWorkspace(res->cublas, res->workspace, ws));
  Ctx c;
  c.device = Device::cuda;
  c.device_index = device_index;
  c.stream = res->stream;
  c.cublas = res->cublas;
  c.cublaslt = res->lt;
  c.workspace = res->workspace;
  c.workspace_bytes = ws;
  c.seed = seed;
  c.owner = res;
  return c;
}

void Ctx::synchronize() const {
  if (device == Device::cuda) CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

CudaStatus cuda_status() {
  CudaStatus s;
  cudaRuntimeGetVersion(&s.runtime_version);
  cudaDriverGetVersion(&s.driver_version);  // 0 when no driver is installed
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    if (e == cudaErrorInsufficientDriver && s.driver_version == 0)
      s.reason = "no NVIDIA driver is installed (cudaErrorInsufficientDriver); running on the CPU";
    else
      s.reason = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    return s;
  }
  if (n == 0) {
    s.reason = "the driver reports no CUDA device";
    return s;
  }
  s.device_count = n;
  s.usable = true;
  return s;
}

CudaDeviceInfo cuda_device_info(int device_index) {
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, device_index));
  CudaDeviceInfo i;
  i.name = p.name;
  i.cc_major = p.major;
  i.cc_minor = p.minor;
  i.sm_count = p.multiProcessorCount;
  i.total_mem = p.totalGlobalMem;
  i.l2_bytes = size_t(p.l2CacheSize);
  int clk = 0, bus = 0;
  cudaDeviceGetAttribute(&clk, cudaDevAttrMemoryClockRate, device_index);
  cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, device_index);
  i.mem_clock_khz = clk;
  i.mem_bus_bits = bus;
  return i;
}

#else  // built without CUDA

Ctx Ctx::make_cuda(int, uint64_t) {
  FAIL_WITH("CUDA is not usable: attnlab was built without CUDA (configure with -DATTNLAB_CUDA=ON and nvcc on PATH)");
}
void Ctx::synchronize() const {}
CudaStatus cuda_status() {
  CudaStatus s;
  s.reason = "attnlab was built without CUDA (configure with -DATTNLAB_CUDA=ON and nvcc on PATH)";
  return s;
}
CudaDeviceInfo cuda_device_info(int) { FAIL_WITH("attnlab was built without CUDA"); }

#endif

}  // namespace attnlab
