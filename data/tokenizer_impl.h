#pragma once
// Internals of Tokenizer shared by data/tokenizer.cpp (encode/decode) and
// data/tokenizer_load.cpp (the file formats). Not part of the public interface.
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/bpe.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"

namespace attnlab::data {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Tokenizer::Impl {
  enum class Kind : uint8_t { gap, vocab, added, special };

  std::string source;
  // Per id: the token as written (byte-level symbols, or an added token's content), its raw
  // bytes, and what it is.
  std::vector<std::string> id_to_token;
  std::vector<std::string> id_to_bytes;
  std::vector<Kind> id_kind;
  StringIdMap vocab;  // byte-level token string -> id (the BPE model's vocabulary)

  int32_t byte_ids[256];
  MergeTable merges;
  bool ignore_merges = false;  // a piece that is itself a vocab token skips the merges

  bool nfc = false;
  bool add_prefix_space = false;
  std::vector<RegexSplitter> splitters;  // applied in order; none: a segment is one piece

  std::vector<AddedToken> added;
  bool added_first_byte[2][256] = {};  // [normalized][byte]: can an added token start here?

  // Per-piece cache: pieces repeat a lot in natural text ("Ġthe", "."), BPE is the costly part.
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache;

  // Called by the loaders once vocab, merges and added tokens are in place.
  void finish_added_tokens();
  void set_id(int32_t id, std::string token, std::string bytes, Kind kind);
};

}  // namespace attnlab::data
