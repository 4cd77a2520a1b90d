#pragma once
// Helpers for the corpus, shard, loader, SFT and synth tests: a scratch folder, file writing, and
// small shard sets built from hand-made token lists (no tokenizer needed).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/token_shard.h"
#include "data/tokenizer.h"
#include <nlohmann/json.hpp>

namespace attnlab::test {

struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "attnlab_data_XXXXXX").string();
    path = mkdtemp(templ.data());
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The message of the attnlab::Error `fn` throws ("" when it throws none).
template <class F> std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Writes `docs` (and optional per-token masks) as one shard set in `dir`, `per_shard` documents
// per file, and opens it.
inline std::shared_ptr<const data::ShardSet> make_shards(const std::string& dir, const std::vector<std::vector<int32_t>>& docs,
                                                         uint32_t vocab, int32_t eos, size_t per_shard = 1000,
                                                         const std::vector<std::vector<uint8_t>>& masks = {}) {
  std::filesystem::create_directories(dir);
  const uint32_t count = uint32_t((docs.size() + per_shard - 1) / per_shard);
  for (uint32_t k = 0; k < std::max<uint32_t>(count, 1); ++k) {
    data::ShardInfo info;
    info.token_bytes = vocab <= 65535 ? 2 : 4;
    info.vocab_size = vocab;
    info.eos_id = eos;
    info.has_mask = !masks.empty();
    info.shard_index = k;
    info.shard_count = std::max<uint32_t>(count, 1);
    info.hash.fill(0xAB);
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    std::vector<uint64_t> starts{0};
    for (size_t d = k * per_shard; d < std::min(docs.size(), (k + 1) * per_shard); ++d) {
      tokens.insert(tokens.end(), docs[d].begin(), docs[d].end());
      if (!masks.empty()) mask.insert(mask.end(), masks[d].begin(), masks[d].end());
      starts.push_back(tokens.size());
    }
    info.token_count = tokens.size();
    info.doc_count = starts.size() - 1;
    data::write_shard(dir + "/" + data::shard_file_name(k), info, tokens, starts, mask);
  }
  return std::make_shared<const data::ShardSet>(data::ShardSet::open(dir));
}

// A byte-level tokenizer: token id = byte value, "<|endoftext|>" = 256, and one merge (two
// newlines -> 257, since a merges file must hold at least one rule). Written
// as GPT-2 vocab.json + merges.txt into `dir`, so shard tests need no asset cache.
inline data::Tokenizer make_byte_tokenizer(const std::string& dir) {
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s.push_back(char(cp));
    else {
      s.push_back(char(0xC0 | (cp >> 6)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    }
    return s;
  };
  // GPT-2's byte-to-symbol map: printable Latin-1 bytes stand for themselves, the others for
  // U+0100 onwards in byte order.
  nlohmann::json vocab = nlohmann::json::object();
  uint32_t next_extra = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    vocab[utf8(printable ? b : next_extra++)] = b;
  }
  vocab["<|endoftext|>"] = 256;
  vocab["\u010a\u010a"] = 257;
  write_text(dir + "/vocab.json", vocab.dump());
  write_text(dir + "/merges.txt", "#version: 0.2\n\u010a \u010a\n");
  return data::Tokenizer::from_gpt2_files(dir + "/vocab.json", dir + "/merges.txt");
}

inline std::vector<int32_t> bytes_of(const std::string& s) {
  std::vector<int32_t> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}

}  // namespace attnlab::test
