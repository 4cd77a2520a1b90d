# Sourced on the GPU machine: finds the CUDA libraries (toolkit folder and the Python wheels'
# nvidia/*/lib folders) and the carried libraries, and puts them on LD_LIBRARY_PATH.
dev=${DEVBUILD:-.devbuild}
if [[ -f $dev/lib.tar.xz && ! -d $dev/lib ]]; then tar -C "$dev" -xJf "$dev/lib.tar.xz"; fi
libs=$PWD/$dev/lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [[ -d $d ]] && libs=$libs:$d; done
py=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0] if hasattr(nvidia, "__path__") else nvidia.__file__))' 2>/dev/null || true)
if [[ -n $py ]]; then
  for d in "$py"/nvidia/*/lib; do libs=$libs:$d; done
fi
export LD_LIBRARY_PATH=$libs:${LD_LIBRARY_PATH:-}
export PATH=$PWD/$dev/bin:/usr/local/cuda/bin:$PATH
