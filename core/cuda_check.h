#pragma once
// Check macros for the CUDA libraries. Include only from files compiled with CUDA available.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace attnlab::detail {
const char* cublas_status_name(cublasStatus_t s);
}

#define CUDA_CHECK(expr)                                                                     \
  do {                                                                                       \
    cudaError_t e_ = (expr);                                                                 \
    if (e_ != cudaSuccess)                                                                   \
      throw ::attnlab::Error(__FILE__, __LINE__, #expr,                                      \
                             std::string(cudaGetErrorName(e_)) + ": " + cudaGetErrorString(e_)); \
  } while (0)

#define CUBLAS_CHECK(expr)                                                          \
  do {                                                                              \
    cublasStatus_t s_ = (expr);                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                \
      throw ::attnlab::Error(__FILE__, __LINE__, #expr,                             \
                             ::attnlab::detail::cublas_status_name(s_));            \
  } while (0)

// After a kernel launch: catches bad launch configurations without synchronising the host.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#if ATTNLAB_WITH_CUDNN
#include <cudnn.h>
#define CUDNN_CHECK(expr)                                                                     \
  do {                                                                                        \
    cudnnStatus_t s_ = (expr);                                                                \
    if (s_ != CUDNN_STATUS_SUCCESS)                                                           \
      throw ::attnlab::Error(__FILE__, __LINE__, #expr, cudnnGetErrorString(s_));             \
  } while (0)
#endif

#if ATTNLAB_WITH_NCCL
#include <nccl.h>
#define NCCL_CHECK(expr)                                                                      \
  do {                                                                                        \
    ncclResult_t r_ = (expr);                                                                 \
    if (r_ != ncclSuccess)                                                                    \
      throw ::attnlab::Error(__FILE__, __LINE__, #expr, ncclGetErrorString(r_));              \
  } while (0)
#endif
