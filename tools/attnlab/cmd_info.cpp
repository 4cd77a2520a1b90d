// attnlab info: versions, devices, and why CUDA is unavailable when it is.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/ctx.h"
#include "tools/attnlab/command.h"

#if ATTNLAB_WITH_CUDA
#include <cublas_v2.h>
#endif
#if ATTNLAB_WITH_CUDNN
#include <cudnn.h>
#endif
#if ATTNLAB_WITH_NCCL
#include <nccl.h>
#endif
#include <cblas.h>

namespace attnlab::cli {
namespace {

std::string cuda_ver(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

void run_info() {
  std::printf("attnlab %s\n", ATTNLAB_VERSION);
  std::printf("  built with CUDA: %s\n", ATTNLAB_WITH_CUDA ? "yes" : "no");
#if ATTNLAB_WITH_CUDA
  std::printf("  cuBLAS (build) %d.%d.%d\n", CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH);
#endif
  std::printf("  nlohmann-json %d.%d.%d, OpenBLAS %s\n", NLOHMANN_JSON_VERSION_MAJOR,
              NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH, openblas_get_config());
#if ATTNLAB_WITH_CUDNN
  std::printf("  cuDNN %zu (loaded)\n", cudnnGetVersion());
#endif
#if ATTNLAB_WITH_NCCL
  int nv = 0;
  ncclGetVersion(&nv);
  std::printf("  NCCL %d\n", nv);
#endif
  std::printf("  MPI communicator: %s\n", ATTNLAB_WITH_MPI ? "built" : "not built");
  CudaStatus st = cuda_status();
  if (st.runtime_version) std::printf("  CUDA runtime %s", cuda_ver(st.runtime_version).c_str());
  if (st.driver_version) std::printf(", driver supports CUDA %s", cuda_ver(st.driver_version).c_str());
  if (st.runtime_version) std::printf("\n");
  if (!st.usable) {
    std::printf("devices: cpu (CUDA unavailable: %s)\n", st.reason.c_str());
    return;
  }
  std::printf("devices: cpu");
  for (int i = 0; i < st.device_count; ++i) {
    CudaDeviceInfo d = cuda_device_info(i);
    std::printf(", cuda:%d %s (sm_%d%d, %d SMs, %.1f GiB, L2 %.0f MiB)", i, d.name.c_str(),
                d.cc_major, d.cc_minor, d.sm_count, double(d.total_mem) / (1u << 30),
                double(d.l2_bytes) / (1u << 20));
  }
  std::printf("\n");
}

void setup(CLI::App& root) {
  auto* c = root.add_subcommand("info", "Print versions, the devices found, and why CUDA is unavailable when it is");
  c->callback(run_info);
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
