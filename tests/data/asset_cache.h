#pragma once
// Test helpers for data/: the golden files in the source tree and the asset cache (found where
// the CLI finds it, data/assets.h). Tests that need a cached file skip, naming the fix.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include <map>
#include <memory>

#include "core/error.h"
#include "data/assets.h"
#include "data/tokenizer.h"

namespace attnlab::test {

inline std::string golden_path(const std::string& name) {
  return std::string(ATTNLAB_SOURCE_DIR) + "/tests/goldens/tokenizer/" + name;
}

// Non-comment lines of a golden file, newline-split only (texts may hold U+2028 and the like).
inline std::vector<std::string> golden_lines(const std::string& name) {
  std::ifstream f(golden_path(name), std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << golden_path(name);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(f, line))
    if (line.empty() || line[0] != '#') out.push_back(line);
  return out;
}

inline std::vector<std::string> golden_texts() {
  std::vector<std::string> texts;
  for (auto& l : golden_lines("texts.txt"))
    if (!l.empty()) texts.push_back(nlohmann::json::parse(l).get<std::string>());
  return texts;
}

inline std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream ss(line);
  int32_t id;
  while (ss >> id) ids.push_back(id);
  return ids;
}

inline std::string missing_assets_message(const std::string& file) {
  return "asset '" + file + "' is not in the asset cache (" + data::asset_cache_dir() +
         "); run `attnlab assets fetch` (or tools/fetch_assets.sh) to run this test";
}

// Tokenizers by name, loaded once per test binary (Qwen's 11 MB tokenizer.json takes a second).
inline const data::Tokenizer& cached_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<data::Tokenizer>> loaded;
  auto& slot = loaded[name];
  if (!slot) slot = std::make_unique<data::Tokenizer>(data::Tokenizer::load(name));
  return *slot;
}

}  // namespace attnlab::test

#define ATTNLAB_REQUIRE_ASSET(file)                                                               \
  do {                                                                                            \
    if (!::attnlab::data::asset_exists(file)) GTEST_SKIP() << ::attnlab::test::missing_assets_message(file); \
  } while (0)
