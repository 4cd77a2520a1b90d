# Sourced on the GPU machine: unpacks what tools/gpu/pack.sh carried (executables, non-CUDA
# libraries, asset cache), finds the CUDA libraries (toolkit folder and the Python wheels'
# nvidia/*/lib folders), and sets LD_LIBRARY_PATH, PATH and ATTNLAB_ASSETS.
dev=${DEVBUILD:-.devbuild}
for part in bin lib; do
  if [[ -f $dev/$part.tar.xz && ! -d $dev/$part ]]; then tar -C "$dev" -xJf "$dev/$part.tar.xz"; fi
done
if [[ -f $dev/assets.tar.xz && ! -d $dev/assets ]]; then
  mkdir -p "$dev/assets" && tar -C "$dev/assets" -xJf "$dev/assets.tar.xz"
fi
[[ -d $dev/assets ]] && export ATTNLAB_ASSETS=$PWD/$dev/assets
# The tests read fixtures from the source folder compiled into them: make that path lead here.
if [[ -f $dev/source_dir ]]; then
  src=$(cat "$dev/source_dir")
  if [[ ! -e $src ]]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi
fi
libs=$PWD/$dev/lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [[ -d $d ]] && libs=$libs:$d; done
py=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0] if hasattr(nvidia, "__path__") else nvidia.__file__))' 2>/dev/null || true)
if [[ -n $py ]]; then
  for d in "$py"/nvidia/*/lib; do libs=$libs:$d; done
fi
export LD_LIBRARY_PATH=$libs:${LD_LIBRARY_PATH:-}
export PATH=$PWD/$dev/bin:/usr/local/cuda/bin:$PATH
