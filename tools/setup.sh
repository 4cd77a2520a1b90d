#!/usr/bin/env bash
# Installs what attnlab needs from Debian's packages (as root), or prints the exact apt-get line
# to run (otherwise). Prints the preset to use: "default" (CUDA) when nvcc exists, else "cpu".
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config ccache libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
          libpcre2-dev libopenblas-dev libopenmpi-dev openmpi-bin libgtest-dev python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    echo "setup: missing Debian packages. Run as root:" >&2
    echo "  sudo sh -c '$line'" >&2
    exit 1
  fi
fi

if [[ -x /usr/local/cuda/bin/nvcc ]] || command -v nvcc >/dev/null 2>&1; then
  echo default
else
  echo "setup: no nvcc found; building the CPU backend only (install the CUDA Toolkit for GPU kernels)" >&2
  echo cpu
fi
