// The asset manifest and cache checks (no network: fetching is exercised by `attnlab assets fetch`).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/asset_cache.h"
#include "data/data_test_util.h"
#include "data/dataset.h"
#include "data/sha256.h"

namespace attnlab::test {
namespace {
namespace fs = std::filesystem;

TEST(Assets, CommittedManifestPinsTheAssetsMdHashes) {
  auto entries = data::load_asset_manifest(std::string(ATTNLAB_SOURCE_DIR) + "/tools/assets.manifest");
  std::map<std::string, const data::AssetEntry*> by_path;
  for (auto& e : entries) by_path[e.cache_path] = &e;
  // Sizes and hashes as shared/ASSETS.md gives them.
  struct Pin {
    const char* path;
    uint64_t bytes;
    const char* sha;
  } pins[] = {
      {"gpt2/encoder.json", 1042301, "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
      {"gpt2/vocab.bpe", 456318, "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
      {"qwen3/tokenizer.json", 11422654, "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"},
      {"text/moby-dick.txt", 1204997, "fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240"},
  };
  for (auto& p : pins) {
    ASSERT_TRUE(by_path.count(p.path)) << p.path;
    EXPECT_EQ(by_path[p.path]->bytes, p.bytes) << p.path;
    EXPECT_EQ(by_path[p.path]->sha256, p.sha) << p.path;
  }
  size_t sotu = 0;
  uint64_t sotu_bytes = 0;
  for (auto& e : entries)
    if (e.cache_path.rfind("text/sotu/", 0) == 0) ++sotu, sotu_bytes += e.bytes;
  EXPECT_EQ(sotu, 233u);  // 233 State of the Union addresses, ~10.8 MB (ASSETS.md)
  EXPECT_NEAR(double(sotu_bytes), 10.8e6, 0.1e6);
  EXPECT_TRUE(by_path.count("text/afinn-111.csv"));
}

TEST(Assets, ManifestErrorsNameTheLine) {
  std::string good = "# comment\npkg@1\tpackage/a\ta/a\t3\t" + data::sha256_hex("abc") + "\n";
  EXPECT_EQ(data::parse_asset_manifest(good, "m").size(), 1u);
  auto error_of = [](const std::string& text) {
    try {
      data::parse_asset_manifest(text, "m.tsv");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_of(good + "pkg@1\tx\ty\t3\n").find("m.tsv:3: expected 5"), std::string::npos);
  EXPECT_NE(error_of(good + "pkg@1\tx\ty\tabc\t" + data::sha256_hex("") + "\n").find("m.tsv:3: byte count"),
            std::string::npos);
  EXPECT_NE(error_of(good + "pkg@1\tx\t../escape\t1\t" + data::sha256_hex("") + "\n").find("m.tsv:3: cache path"),
            std::string::npos);
  EXPECT_NE(error_of(good + "pkg@1\tx\ty\t1\tXYZ\n").find("m.tsv:3"), std::string::npos);
}

TEST(Assets, CheckDetectsMissingResizedAndAlteredFiles) {
  auto path = fs::temp_directory_path() / "attnlab_asset_check.txt";
  std::ofstream(path, std::ios::binary) << "hello asset";
  data::AssetEntry e{"pkg@1", "package/x", "x", 11, data::sha256_hex("hello asset")};
  EXPECT_TRUE(data::check_asset(path.string(), e).ok());
  std::ofstream(path, std::ios::binary) << "hello assex";
  data::AssetCheck altered = data::check_asset(path.string(), e);
  EXPECT_FALSE(altered.ok());
  EXPECT_NE(altered.problem().find("expected " + e.sha256), std::string::npos) << altered.problem();
  std::ofstream(path, std::ios::binary) << "hello";
  EXPECT_NE(data::check_asset(path.string(), e).problem().find("size 5 bytes, expected 11"), std::string::npos);
  fs::remove(path);
  EXPECT_EQ(data::check_asset(path.string(), e).problem(), "missing");
}

TEST(Assets, CacheFolderFollowsTheEnvironment) {
  const char* saved = std::getenv("ATTNLAB_ASSETS");
  std::string keep = saved ? saved : "";
  setenv("ATTNLAB_ASSETS", "/some/where", 1);
  EXPECT_EQ(data::asset_cache_dir(), "/some/where");
  EXPECT_EQ(data::asset_path("gpt2/vocab.bpe"), "/some/where/gpt2/vocab.bpe");
  try {
    data::require_asset("gpt2/vocab.bpe");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attnlab assets fetch"), std::string::npos) << e.what();
  }
  if (saved) setenv("ATTNLAB_ASSETS", keep.c_str(), 1);
  else unsetenv("ATTNLAB_ASSETS");
}

// "assets:REL" in an experiment's data.path names the cache; any consumer of the data section
// (training, `attnlab data prepare`) resolves it through data::corpus_source.
TEST(Assets, DataPathsNameTheCache) {
  const char* saved = std::getenv("ATTNLAB_ASSETS");
  std::string keep = saved ? saved : "";
  const fs::path dir = fs::temp_directory_path() / ("attnlab_assets_" + std::to_string(::getpid()));
  fs::create_directories(dir / "text");
  std::ofstream(dir / "text" / "a.txt") << "some text";
  setenv("ATTNLAB_ASSETS", dir.c_str(), 1);
  EXPECT_EQ(data::resolve_data_path("assets:text/a.txt"), (dir / "text/a.txt").string());
  data::DatasetConfig d;
  d.source.path = "assets:text";
  EXPECT_EQ(data::corpus_source(d).path, (dir / "text").string());
  EXPECT_EQ(data::resolve_data_path("/data/wikitext-2"), "/data/wikitext-2");  // not an asset: unchanged
  const std::string err = error_of([] { data::resolve_data_path("assets:text/missing"); });
  EXPECT_NE(err.find("assets:text/missing"), std::string::npos) << err;
  EXPECT_NE(err.find("attnlab assets fetch"), std::string::npos) << err;
  if (saved) setenv("ATTNLAB_ASSETS", keep.c_str(), 1);
  else unsetenv("ATTNLAB_ASSETS");
  fs::remove_all(dir);
}

// A name the manifest does not know is a typo: the error lists the asset names (folders for the
// corpora, files for the tokenizers) with a did-you-mean, whether or not the cache is fetched.
TEST(Assets, DataPathTypoListsTheAvailableNames) {
  const char* saved = std::getenv("ATTNLAB_ASSETS");
  std::string keep = saved ? saved : "";
  const fs::path dir = fs::temp_directory_path() / ("attnlab_assets_typo_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  setenv("ATTNLAB_ASSETS", dir.c_str(), 1);
  // The names come from the manifest (an empty cache holds no copy of it).
  const char* saved_manifest = std::getenv("ATTNLAB_ASSETS_MANIFEST");
  const std::string keep_manifest = saved_manifest ? saved_manifest : "";
  setenv("ATTNLAB_ASSETS_MANIFEST", (std::string(ATTNLAB_SOURCE_DIR) + "/tools/assets.manifest").c_str(), 1);
  const std::string typo = error_of([] { data::resolve_data_path("assets:text/sotuu"); });
  EXPECT_NE(typo.find("did you mean assets:text/sotu?"), std::string::npos) << typo;
  for (const char* name : {"assets:text/sotu", "assets:gpt2/encoder.json", "assets:qwen3/tokenizer.json",
                           "assets:text/moby-dick.txt"})
    EXPECT_NE(typo.find(name), std::string::npos) << name << "\n" << typo;
  EXPECT_EQ(typo.find("1790_george_washington"), std::string::npos) << "a corpus is listed as its folder: " << typo;
  // A known name that is not fetched yet: the fix is to fetch, no list.
  const std::string unfetched = error_of([] { data::resolve_data_path("assets:text/sotu"); });
  EXPECT_NE(unfetched.find("attnlab assets fetch"), std::string::npos) << unfetched;
  EXPECT_EQ(unfetched.find("did you mean"), std::string::npos) << unfetched;
  if (saved_manifest) setenv("ATTNLAB_ASSETS_MANIFEST", keep_manifest.c_str(), 1);
  else unsetenv("ATTNLAB_ASSETS_MANIFEST");
  if (saved) setenv("ATTNLAB_ASSETS", keep.c_str(), 1);
  else unsetenv("ATTNLAB_ASSETS");
  fs::remove_all(dir);
}

TEST(Assets, FetchedCacheVerifies) {
  ATTNLAB_REQUIRE_ASSET("manifest.tsv");
  auto entries = data::load_asset_manifest(std::string(ATTNLAB_SOURCE_DIR) + "/tools/assets.manifest");
  for (auto& e : entries) {
    if (e.bytes > 2'000'000) continue;  // keep the test fast; `attnlab assets verify` hashes all
    data::AssetCheck c = data::check_asset(data::asset_path(e.cache_path), e);
    EXPECT_TRUE(c.ok()) << e.cache_path << ": " << c.problem();
  }
}

}  // namespace
}  // namespace attnlab::test
