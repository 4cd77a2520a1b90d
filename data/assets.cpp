#include "data/assets.h"

#include <algorithm>
#include <map>
#include <optional>

#include "core/config/suggest.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "data/input_check.h"
#include "core/log.h"
#include "data/sha256.h"

extern char** environ;

namespace attnlab::data {
namespace fs = std::filesystem;
namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : std::string();
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  INPUT_CHECK(f.good(), "cannot read '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool find_in_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  std::string path = env_or_empty("PATH");
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':'))
    if (!dir.empty() && access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  return false;
}

// Runs argv[0] (looked up in PATH) with stdout and stderr sent to `log_file`; returns the exit
// status (or -1 when it could not start).
int run_program(const std::vector<std::string>& argv, const std::string& log_file) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string tail_of(const std::string& path, size_t max_chars = 1500) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > max_chars ? "..." + s.substr(s.size() - max_chars) : s;
}

// A scratch folder inside the cache (same file system, so the final rename is atomic), removed
// when the fetch ends however it ends.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const fs::path& parent) {
    std::string templ = (parent / ".fetch.XXXXXX").string();
    INPUT_CHECK(mkdtemp(templ.data()) != nullptr, "cannot create a scratch folder in '", parent.string(),
          "'; set ATTNLAB_ASSETS to a writable folder");
    path = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string source_tree_manifest() {
  // __FILE__ is data/assets.cpp of the source tree this binary was compiled from.
  fs::path here(__FILE__);
  if (!here.is_absolute()) return "";
  return (here.parent_path().parent_path() / "tools" / "assets.manifest").string();
}

}  // namespace

std::string asset_cache_dir() {
  std::string dir = env_or_empty("ATTNLAB_ASSETS");
  if (!dir.empty()) return dir;
  std::string xdg = env_or_empty("XDG_CACHE_HOME");
  if (!xdg.empty()) return xdg + "/attnlab/assets";
  std::string home = env_or_empty("HOME");
  INPUT_CHECK(!home.empty(), "cannot place the asset cache: set ATTNLAB_ASSETS (or XDG_CACHE_HOME or HOME)");
  return home + "/.cache/attnlab/assets";
}

std::string asset_manifest_path() {
  std::string explicit_path = env_or_empty("ATTNLAB_ASSETS_MANIFEST");
  if (!explicit_path.empty()) return explicit_path;
  std::string in_tree = source_tree_manifest();
  if (!in_tree.empty() && fs::exists(in_tree)) return in_tree;
  return asset_cache_dir() + "/manifest.tsv";
}

std::vector<AssetEntry> parse_asset_manifest(const std::string& text, const std::string& source) {
  std::vector<AssetEntry> out;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  std::set<std::string> seen;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream ls(line);
    std::string col;
    while (std::getline(ls, col, '\t')) cols.push_back(col);
    INPUT_CHECK(cols.size() == 5, source, ":", line_no, ": expected 5 tab-separated columns (package, file in ",
          "tarball, cache path, bytes, sha256), found ", cols.size(),
          "; regenerate the manifest with tools/fetch_assets.sh --record");
    AssetEntry e{cols[0], cols[1], cols[2], 0, cols[4]};
    char* end = nullptr;
    e.bytes = std::strtoull(cols[3].c_str(), &end, 10);
    INPUT_CHECK(!cols[3].empty() && *end == '\0', source, ":", line_no, ": byte count '", cols[3],
          "' is not a number");
    INPUT_CHECK(e.sha256.size() == 64 && e.sha256.find_first_not_of("0123456789abcdef") == std::string::npos,
          source, ":", line_no, ": '", e.sha256, "' is not a lower-case hex sha256");
    INPUT_CHECK(e.cache_path.find("..") == std::string::npos && !e.cache_path.empty() && e.cache_path[0] != '/',
          source, ":", line_no, ": cache path '", e.cache_path, "' must be relative and stay inside the cache");
    INPUT_CHECK(seen.insert(e.cache_path).second, source, ":", line_no, ": cache path '", e.cache_path,
          "' appears twice");
    out.push_back(std::move(e));
  }
  INPUT_CHECK(!out.empty(), source, ": the manifest lists no files");
  return out;
}

std::vector<AssetEntry> load_asset_manifest(const std::string& path) {
  INPUT_CHECK(fs::exists(path), "asset manifest '", path, "' not found; it ships in the source tree as ",
        "tools/assets.manifest (point ATTNLAB_ASSETS_MANIFEST at it)");
  return parse_asset_manifest(read_text_file(path), path);
}

std::string AssetCheck::problem() const {
  if (!present) return "missing";
  if (actual_bytes != entry->bytes)
    return detail::cat("size ", actual_bytes, " bytes, expected ", entry->bytes);
  if (actual_sha256 != entry->sha256)
    return detail::cat("sha256 ", actual_sha256, ", expected ", entry->sha256);
  return "";
}

AssetCheck check_asset(const std::string& file, const AssetEntry& entry) {
  AssetCheck c;
  c.entry = &entry;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return c;
  c.present = true;
  c.actual_bytes = fs::file_size(file, ec);
  if (c.actual_bytes != entry.bytes) return c;  // no need to hash a file of the wrong size
  c.actual_sha256 = sha256_file_hex(file);
  return c;
}

int fetch_assets(const FetchOptions& opt) {
  fs::path cache = opt.cache_dir.empty() ? asset_cache_dir() : opt.cache_dir;
  std::string manifest_path = opt.manifest_path.empty() ? asset_manifest_path() : opt.manifest_path;
  std::vector<AssetEntry> entries = load_asset_manifest(manifest_path);
  std::error_code ec;
  fs::create_directories(cache, ec);
  INPUT_CHECK(fs::is_directory(cache), "cannot create the asset cache '", cache.string(),
        "'; set ATTNLAB_ASSETS to a writable folder");

  std::map<std::string, std::vector<const AssetEntry*>> todo;  // package -> its files
  for (auto& e : entries)
    if (opt.force || !check_asset((cache / e.cache_path).string(), e).ok()) todo[e.package].push_back(&e);
  int written = 0;
  if (!todo.empty()) {
    INPUT_CHECK(find_in_path(opt.npm), "'", opt.npm, "' (npm) is not installed or not in PATH; install it with: ",
          "sudo apt-get install -y nodejs npm   (or copy an asset cache made on another machine to '",
          cache.string(), "')");
    INPUT_CHECK(find_in_path("tar"), "tar is not installed; install it with: sudo apt-get install -y tar");
    ScratchDir scratch(cache);
    for (auto& [package, files] : todo) {
      log_info("assets: fetching ", package, " (", files.size(), " file", files.size() == 1 ? "" : "s", ")");
      fs::path pkg_dir = scratch.path / std::to_string(written) / "pkg";
      fs::create_directories(pkg_dir);
      std::string log = (scratch.path / "log.txt").string();
      int rc = run_program({opt.npm, "pack", "--silent", "--pack-destination", pkg_dir.string(), package}, log);
      INPUT_CHECK(rc == 0, "'npm pack ", package, "' failed (exit ", rc, "); is the npm registry reachable? npm said: ",
            tail_of(log));
      fs::path tarball;
      for (auto& f : fs::directory_iterator(pkg_dir))
        if (f.path().extension() == ".tgz") tarball = f.path();
      INPUT_CHECK(!tarball.empty(), "'npm pack ", package, "' wrote no .tgz into ", pkg_dir.string());
      rc = run_program({"tar", "xzf", tarball.string(), "-C", pkg_dir.string()}, log);
      INPUT_CHECK(rc == 0, "cannot extract ", tarball.string(), ": ", tail_of(log));
      for (const AssetEntry* e : files) {
        fs::path src = pkg_dir / e->tar_path;
        AssetCheck c = check_asset(src.string(), *e);
        INPUT_CHECK(c.present, package, " has no file '", e->tar_path, "'; the registry serves a package that differs ",
              "from the one pinned in ", manifest_path);
        INPUT_CHECK(c.ok(), "hash mismatch for '", e->tar_path, "' of ", package, " (cache path ", e->cache_path,
              "): ", c.problem(), "; the registry served different bytes than the manifest pins, ",
              "so the file was not installed");
        fs::path dst = cache / e->cache_path;
        fs::create_directories(dst.parent_path());
        fs::path partial = dst;
        partial += ".partial";
        fs::copy_file(src, partial, fs::copy_options::overwrite_existing);
        fs::rename(partial, dst);
        ++written;
      }
    }
  }
  // A copy of the manifest travels with the cache, so a machine without the source tree (or
  // without network) can still verify it.
  if (fs::absolute(manifest_path) != fs::absolute(cache / "manifest.tsv"))
    fs::copy_file(manifest_path, cache / "manifest.tsv", fs::copy_options::overwrite_existing);
  return written;
}

std::string asset_path(const std::string& relative) { return asset_cache_dir() + "/" + relative; }

bool asset_exists(const std::string& relative) {
  std::error_code ec;
  return fs::is_regular_file(asset_path(relative), ec);
}

std::string require_asset(const std::string& relative) {
  std::string p = asset_path(relative);
  INPUT_CHECK(asset_exists(relative), "asset '", relative, "' is not in the asset cache (", asset_cache_dir(),
        "); run `attnlab assets fetch` (or tools/fetch_assets.sh) on a machine with npm, or set ",
        "ATTNLAB_ASSETS to a folder holding a fetched cache");
  return p;
}

static std::vector<std::string> asset_names(const std::vector<AssetEntry>& manifest) {
  std::vector<std::string> names;
  auto add = [&](const std::string& n) {
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  };
  std::map<std::string, int> files_in;
  for (const AssetEntry& e : manifest) files_in[fs::path(e.cache_path).parent_path().string()] += 1;
  for (const AssetEntry& e : manifest) {
    const std::string folder = fs::path(e.cache_path).parent_path().string();
    // A corpus folder of hundreds of files is named as the folder; a tokenizer's few files one by one.
    if (files_in[folder] > 4) add(folder);
    else add(e.cache_path);
  }
  return names;
}

std::string resolve_data_path(const std::string& path) {
  static const std::string prefix = "assets:";
  if (path.rfind(prefix, 0) != 0) return path;
  const std::string relative = path.substr(prefix.size());
  const std::string resolved = asset_path(relative);
  if (fs::exists(resolved)) return resolved;
  // Not in the cache: a name the manifest knows (not fetched yet) or a typo (list the names).
  std::vector<AssetEntry> manifest;
  try {
    manifest = load_asset_manifest(asset_manifest_path());
  } catch (const Error&) {
  }
  bool known = false;
  for (const AssetEntry& e : manifest) {
    const std::string& c = e.cache_path;
    if (c == relative || (c.size() > relative.size() && c.compare(0, relative.size(), relative) == 0 &&
                          c[relative.size()] == '/'))
      known = true;
  }
  if (!manifest.empty() && !known) {
    const std::vector<std::string> names = asset_names(manifest);
    std::vector<std::string> folders_and_files = names;
    for (const AssetEntry& e : manifest) folders_and_files.push_back(fs::path(e.cache_path).parent_path().string());
    const std::optional<std::string> near = config::closest_word(relative, folders_and_files);
    FAIL_WITH("data path '", path, "': '", relative, "' is no asset name", near ? "; did you mean assets:" + *near + "?" : ".",
              " The asset cache holds: assets:", config::join_words(names, ", assets:"),
              " (`attnlab assets fetch` downloads them; `attnlab assets path` prints where the cache is)");
  }
  FAIL_WITH("data path '", path, "': '", relative, "' is not in the asset cache (", asset_cache_dir(),
            "). Fix: run `attnlab assets fetch` (it downloads the tokenizers and the public-domain texts)");
}

}  // namespace attnlab::data
