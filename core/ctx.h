#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace attnlab {

class ProbeSink;  // core/probes.h: captures requested by analyses (nothing when null)

// What every launch needs. Cheap to copy: the CUDA resources (stream, cuBLAS/cuBLASLt
// handles, workspace) are owned by a shared holder and torn down with the last copy.
// Handles are stored as void* so that headers need no CUDA includes.
struct Ctx {
  Device device = Device::cpu;
  int device_index = -1;
  void* stream = nullptr;       // cudaStream_t
  void* cublas = nullptr;       // cublasHandle_t
  void* cublaslt = nullptr;     // cublasLtHandle_t
  void* workspace = nullptr;    // cuBLASLt workspace (device memory)
  size_t workspace_bytes = 0;
  uint64_t seed = 0;            // Philox key: the same stream on CPU and GPU
  uint64_t rng_offset = 0;      // Philox counter base, advanced by every random op
  bool nvtx = true;             // NVTX ranges around launchers (free when no tool listens)
  ProbeSink* probes = nullptr;
  std::shared_ptr<void> owner;

  static Ctx make_cpu(uint64_t seed = 0);
  // Creates a stream and the cuBLAS/cuBLASLt handles on `device_index`. Throws attnlab::Error
  // with the reason (no driver, no device, ...) when CUDA is unusable.
  static Ctx make_cuda(int device_index = 0, uint64_t seed = 0);

  bool is_cuda() const { return device == Device::cuda; }
  void synchronize() const;
  // Reserves `n` Philox counters and returns the first one.
  uint64_t take_rng(uint64_t n) {
    uint64_t o = rng_offset;
    rng_offset += n;
    return o;
  }
};

// Whether CUDA can be used here and, when not, why (built without CUDA, no driver, no device...).
struct CudaStatus {
  bool usable = false;
  int device_count = 0;
  int driver_version = 0;   // e.g. 13000
  int runtime_version = 0;
  std::string reason;       // empty when usable
};
CudaStatus cuda_status();

struct CudaDeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_mem = 0;
  size_t l2_bytes = 0;
  int mem_clock_khz = 0, mem_bus_bits = 0;
};
CudaDeviceInfo cuda_device_info(int device_index);

}  // namespace attnlab
