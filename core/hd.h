#pragma once
// ATTNLAB_HD marks per-element / per-row arithmetic shared by the CPU loops and the CUDA
// kernels, so the CPU tests exercise the same arithmetic the GPU runs.
#if defined(__CUDACC__)
#define ATTNLAB_HD __host__ __device__ __forceinline__
#else
#define ATTNLAB_HD inline
#endif
