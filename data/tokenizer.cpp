#include "data/tokenizer.h"

#include "data/input_check.h"
#include "data/tokenizer_impl.h"
#include "data/unicode_nfc.h"

namespace attnlab::data {
namespace {

// Pieces longer than this are encoded without the cache: they rarely repeat and would bloat it.
constexpr size_t kMaxCachedPiece = 128;
constexpr size_t kMaxCacheEntries = size_t(1) << 20;

bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

struct Match {
  size_t begin, end;  // span in the text, including stripped whitespace
  int32_t id;
};

}  // namespace

void Tokenizer::Impl::set_id(int32_t id, std::string token, std::string bytes, Kind kind) {
  if (size_t(id) >= id_to_token.size()) {
    id_to_token.resize(size_t(id) + 1);
    id_to_bytes.resize(size_t(id) + 1);
    id_kind.resize(size_t(id) + 1, Kind::gap);
  }
  id_to_token[size_t(id)] = std::move(token);
  id_to_bytes[size_t(id)] = std::move(bytes);
  id_kind[size_t(id)] = kind;
}

void Tokenizer::Impl::finish_added_tokens() {
  for (auto& row : added_first_byte)
    for (bool& b : row) b = false;
  for (auto& a : added) {
    added_first_byte[a.normalized][uint8_t(a.content[0])] = true;
    set_id(a.id, a.content, a.content, a.special ? Kind::special : Kind::added);
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {

// Leftmost-longest occurrences of the added tokens whose `normalized` flag equals `normalized`.
std::vector<Match> find_added_tokens(const Tokenizer::Impl& t, std::string_view text, bool normalized) {
  std::vector<Match> found;
  for (size_t i = 0; i < text.size();) {
    if (!t.added_first_byte[normalized][uint8_t(text[i])]) {
      ++i;
      continue;
    }
    const AddedToken* best = nullptr;
    for (auto& a : t.added)
      if (a.normalized == normalized && text.compare(i, a.content.size(), a.content) == 0 &&
          (!best || a.content.size() > best->content.size()))
        best = &a;
    if (!best) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + best->content.size();
    size_t floor = found.empty() ? 0 : found.back().end;
    if (best->lstrip)
      while (begin > floor && is_space_byte(text[begin - 1])) --begin;
    if (best->rstrip)
      while (end < text.size() && is_space_byte(text[end])) ++end;
    found.push_back({begin, end, best->id});
    i = end;
  }
  return found;
}

// Encodes text that holds no added tokens (already normalised), appending ids and the offsets
// `base + position in text`.
void encode_plain(const Tokenizer::Impl& t, std::string_view text, size_t base, std::vector<int32_t>& ids,
                         std::vector<size_t>* offsets) {
  if (text.empty()) return;
  std::string prefixed;
  size_t shift = 0;  // bytes added in front of the text
  if (t.add_prefix_space && text[0] != ' ') {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
    shift = 1;
  }
  std::vector<std::pair<size_t, size_t>> pieces{{0, text.size()}}, next;
  for (auto& splitter : t.splitters) {
    next.clear();
    for (auto [b, e] : pieces) {
      size_t before = next.size();
      splitter.split(text.substr(b, e - b), next);
      for (size_t k = before; k < next.size(); ++k) next[k].first += b, next[k].second += b;
    }
    pieces.swap(next);
  }
  std::vector<int32_t> piece_ids;
  for (auto [b, e] : pieces) {
    std::string_view piece = text.substr(b, e - b);
    piece_ids.clear();
    bool cached = false;
    if (piece.size() <= kMaxCachedPiece) {
      std::lock_guard<std::mutex> lock(t.cache_mutex);
      auto it = t.cache.find(piece);
      if (it != t.cache.end()) {
        piece_ids = it->second;
        cached = true;
      }
    }
    if (!cached) {
      if (t.ignore_merges) {
        auto it = t.vocab.find(bytes_to_byte_level(piece));
        if (it != t.vocab.end()) piece_ids.push_back(it->second);
      }
      if (piece_ids.empty()) bpe_merge_word(piece, t.byte_ids, t.merges, piece_ids);
      if (piece.size() <= kMaxCachedPiece) {
        std::lock_guard<std::mutex> lock(t.cache_mutex);
        if (t.cache.size() >= kMaxCacheEntries) t.cache.clear();
        t.cache.emplace(std::string(piece), piece_ids);
      }
    }
    size_t at = b;
    for (int32_t id : piece_ids) {
      ids.push_back(id);
      if (offsets) offsets->push_back(base + (at > shift ? at - shift : 0));
      at += t.id_to_bytes[size_t(id)].size();
    }
  }
}

// Normalises a stretch between raw-matched added tokens, then matches the added tokens that
// apply to normalised text, then encodes the rest.
void encode_segment(const Tokenizer::Impl& t, std::string_view raw, size_t base, bool match_added,
                           std::vector<int32_t>& ids, std::vector<size_t>* offsets) {
  std::string normalized;
  std::string_view text = raw;
  if (t.nfc && !is_trivially_nfc(raw)) {
    normalized = to_nfc(raw);
    text = normalized;
  }
  if (!match_added) {
    encode_plain(t, text, base, ids, offsets);
    return;
  }
  size_t pos = 0;
  for (const Match& m : find_added_tokens(t, text, /*normalized=*/true)) {
    encode_plain(t, text.substr(pos, m.begin - pos), base + pos, ids, offsets);
    ids.push_back(m.id);
    if (offsets) offsets->push_back(base + m.begin);
    pos = m.end;
  }
  encode_plain(t, text.substr(pos), base + pos, ids, offsets);
}

}  // namespace

std::vector<int32_t> Tokenizer::encode_with_offsets(std::string_view text, std::vector<size_t>& offsets,
                                                    const EncodeOptions& opt) const {
  std::vector<int32_t> ids;
  offsets.clear();
  size_t bad = find_invalid_utf8(text);
  INPUT_CHECK(bad == std::string_view::npos, "cannot tokenize: the text is not valid UTF-8 at byte ", bad,
              "; convert it to UTF-8 first");
  const Impl& t = *impl_;
  size_t pos = 0;
  if (opt.match_added_tokens) {
    for (const Match& m : find_added_tokens(t, text, /*normalized=*/false)) {
      encode_segment(t, text.substr(pos, m.begin - pos), pos, true, ids, &offsets);
      ids.push_back(m.id);
      offsets.push_back(m.begin);
      pos = m.end;
    }
  }
  encode_segment(t, text.substr(pos), pos, opt.match_added_tokens, ids, &offsets);
  return ids;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opt) const {
  std::vector<size_t> offsets;
  return encode_with_offsets(text, offsets, opt);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    INPUT_CHECK(id >= 0 && size_t(id) < t.id_kind.size() && t.id_kind[size_t(id)] != Impl::Kind::gap,
                "cannot decode token ", i, ": id ", id, " is not in the vocabulary of ", t.source, " (ids 0..",
                t.id_kind.size() - 1, ")");
    if (skip_special && t.id_kind[size_t(id)] == Impl::Kind::special) continue;
    out += t.id_to_bytes[size_t(id)];
  }
  return out;
}

std::string Tokenizer::normalize(std::string_view text) const {
  return impl_->nfc ? to_nfc(text) : std::string(text);
}
bool Tokenizer::uses_nfc() const { return impl_->nfc; }
int32_t Tokenizer::vocab_size() const { return int32_t(impl_->id_kind.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (auto& a : impl_->added)
    if (a.content == token) return a.id;
  auto it = impl_->vocab.find(token);
  if (it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

const std::string& Tokenizer::token_string(int32_t id) const {
  INPUT_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is outside the vocabulary (", vocab_size(), " ids)");
  return impl_->id_to_token[size_t(id)];
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const std::string& Tokenizer::source() const { return impl_->source; }
size_t Tokenizer::merge_count() const { return impl_->merges.size(); }

std::vector<std::string> Tokenizer::split_patterns() const {
  std::vector<std::string> out;
  for (auto& s : impl_->splitters) out.push_back(s.pattern());
  return out;
}

void Tokenizer::drop_added_tokens_above(int32_t max_id) {
  Impl& t = *impl_;
  std::vector<AddedToken> kept;
  for (auto& a : t.added) {
    if (a.id <= max_id) kept.push_back(a);
    else t.set_id(a.id, "", "", Impl::Kind::gap);
  }
  t.added = std::move(kept);
  while (!t.id_kind.empty() && t.id_kind.back() == Impl::Kind::gap) {
    t.id_kind.pop_back();
    t.id_to_token.pop_back();
    t.id_to_bytes.pop_back();
  }
  t.finish_added_tokens();
  std::lock_guard<std::mutex> lock(t.cache_mutex);
  t.cache.clear();
}

}  // namespace attnlab::data
