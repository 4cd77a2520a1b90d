#include "data/unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "data/input_check.h"

namespace attnlab::data {
namespace {

struct CombiningClassRange {
  char32_t first, last;
  uint8_t klass;
};
struct Decomposition {
  char32_t cp;
  uint16_t offset;
  uint8_t length;
};
struct Composition {
  char32_t first, second, composite;
};

#include "data/unicode_nfc_tables.inc"

// Hangul syllables decompose and compose arithmetically (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kCombiningClassRanges), std::end(kCombiningClassRanges), cp,
                             [](char32_t c, const CombiningClassRange& r) { return c < r.first; });
  if (it == std::begin(kCombiningClassRanges)) return 0;
  --it;
  return (cp <= it->last) ? it->klass : 0;
}

void decompose_into(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                               [](const Decomposition& d, char32_t c) { return d.cp < c; });
    if (it != std::end(kDecompositions) && it->cp == cp) {
      out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
      return;
    }
  }
  out.push_back(cp);
}

// The primary composite of (first, second), or 0 when there is none.
char32_t compose_pair(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount)
    return first + (second - kTBase);
  auto key_less = [](const Composition& c, std::pair<char32_t, char32_t> k) {
    return c.first != k.first ? c.first < k.first : c.second < k.second;
  };
  auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::make_pair(first, second), key_less);
  if (it != std::end(kCompositions) && it->first == first && it->second == second) return it->composite;
  return 0;
}

}  // namespace

int32_t decode_utf8(std::string_view s, size_t& pos) {
  auto byte = [&](size_t i) { return uint8_t(s[i]); };
  uint8_t b0 = byte(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int len;
  char32_t cp, min;
  if ((b0 & 0xE0) == 0xC0) len = 2, cp = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0) len = 3, cp = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0) len = 4, cp = b0 & 0x07, min = 0x10000;
  else return -1;
  if (pos + len > s.size()) return -1;
  for (int i = 1; i < len; ++i) {
    uint8_t b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  pos += len;
  return int32_t(cp);
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

size_t find_invalid_utf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (uint8_t(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    if (decode_utf8(s, pos) < 0) return pos;
  }
  return std::string_view::npos;
}

bool is_trivially_nfc(std::string_view s) {
  // U+0300 is encoded as 0xCC 0x80: any lead byte at or above 0xCC starts a code point >= U+0300.
  for (char c : s)
    if (uint8_t(c) >= 0xCC) return false;
  return true;
}

std::string to_nfc(std::string_view text) {
  if (is_trivially_nfc(text)) {
    size_t bad = find_invalid_utf8(text);
    INPUT_CHECK(bad == std::string_view::npos, "text is not valid UTF-8 at byte ", bad);
    return std::string(text);
  }
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t at = pos;
    int32_t cp = decode_utf8(text, pos);
    INPUT_CHECK(cp >= 0, "text is not valid UTF-8 at byte ", at);
    decompose_into(char32_t(cp), cps);
  }
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition: a character joins the last starter unless a character between them
  // has class 0 or a class at least its own (it is "blocked").
  if (!cps.empty()) {
    size_t starter_pos = 0;
    int last_class = combining_class(cps[0]) ? 256 : 0;  // a leading non-starter blocks everything
    size_t write = 1;
    for (size_t read = 1; read < cps.size(); ++read) {
      char32_t ch = cps[read];
      int ch_class = combining_class(ch);
      char32_t composite = (last_class < ch_class || last_class == 0) ? compose_pair(cps[starter_pos], ch) : 0;
      if (composite && last_class != 256) {
        cps[starter_pos] = composite;
        continue;
      }
      if (ch_class == 0) starter_pos = write;
      last_class = ch_class;
      cps[write++] = ch;
    }
    cps.resize(write);
  }
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : cps) append_utf8(out, cp);
  return out;
}

}  // namespace attnlab::data
