#pragma once
// Unicode Normalization Form C (UAX #15): canonical decomposition, canonical ordering, canonical
// composition. Qwen's tokenizer.json normalises every text segment to NFC before splitting it.
// Tables come from the Unicode Character Database via tools/gen/gen_nfc_tables.py.
#include <string>
#include <string_view>

namespace attnlab::data {

// NFC of valid UTF-8 text. Throws attnlab::Error (with the byte offset) on invalid UTF-8.
std::string to_nfc(std::string_view utf8);
// True when to_nfc would return the text unchanged without doing the work: every code point is
// below U+0300, where no character decomposes into, reorders with or composes with its neighbours.
bool is_trivially_nfc(std::string_view utf8);

// UTF-8 helpers shared by the tokenizer. decode_utf8 returns the code point at `pos` and advances
// `pos`; it returns -1 (and leaves pos) at an invalid or truncated sequence.
int32_t decode_utf8(std::string_view s, size_t& pos);
void append_utf8(std::string& out, char32_t cp);
// Byte offset of the first invalid UTF-8 sequence, or npos when the text is valid.
size_t find_invalid_utf8(std::string_view s);

}  // namespace attnlab::data
