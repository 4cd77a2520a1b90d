#!/usr/bin/env bash
# Packs what a GPU machine without network needs to run attnlab's GPU tests and benchmarks:
# the executables of build/ and the non-CUDA shared libraries they load, into .devbuild/
# (git-ignored). CUDA, cuBLAS, cuDNN and NCCL come from the GPU machine itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.devbuild
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib"
for b in build/attnlab build/tests/attnlab_tests build/tests/attnlab_gpu_tests; do
  cp "$b" "$out/bin/"
  strip --strip-debug "$out/bin/$(basename "$b")" 2>/dev/null || true
done
# Shared libraries that are neither the C/C++ runtime nor CUDA's.
ldd build/tests/attnlab_gpu_tests build/attnlab | awk '/=> \//{print $3}' | sort -u |
  grep -v -E 'libc\.so|libm\.so|libstdc\+\+|libgcc_s|ld-linux|libdl|libpthread|librt|cuda|cublas|cudnn|nccl|nvrtc|nvJitLink' |
  while read -r l; do cp -L "$l" "$out/lib/"; done
tar -C "$out" -cJf "$out/lib.tar.xz" lib && rm -rf "$out/lib"
du -sh "$out"/*
