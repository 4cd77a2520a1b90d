#!/usr/bin/env bash
# Packs what a GPU machine without network needs to run attnlab's GPU tests, benchmarks and
# GPU training runs into .devbuild/ (git-ignored), compressed so it fits the device tool's 64 MiB:
#   bin.tar.xz     the executables of build/ (debug sections stripped; device code keeps -lineinfo)
#   lib.tar.xz     the non-CUDA shared libraries they load (yaml-cpp, PCRE2, OpenBLAS, ...)
#   assets.tar.xz  the verified asset cache (tokenizers, texts), unless ATTNLAB_PACK_ASSETS=0
# CUDA, cuBLAS, cuDNN and NCCL come from the GPU machine itself; tools/gpu/env.sh unpacks all this.
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
tar -C "$out" -cf - bin | xz -T0 -6 > "$out/bin.tar.xz" && rm -rf "$out/bin"
tar -C "$out" -cf - lib | xz -T0 -6 > "$out/lib.tar.xz" && rm -rf "$out/lib"
assets=${ATTNLAB_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/attnlab/assets}
if [[ ${ATTNLAB_PACK_ASSETS:-1} != 0 && -d $assets ]]; then
  tar -C "$assets" -cf - . | xz -T0 -6 > "$out/assets.tar.xz"
fi
# Tests find fixtures and goldens under the source folder compiled into them; env.sh links it.
pwd > "$out/source_dir"
du -sh "$out"/*
du -sh "$out"
