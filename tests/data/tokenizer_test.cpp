// Tokenizer tests: ids equal the reference JavaScript tokenizers' goldens on every line for GPT-2
// and Qwen3, round trips, both merges formats, added tokens, and malformed-file errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/asset_cache.h"
#include "data/assets.h"
#include "data/bpe.h"
#include "data/chat_template.h"
#include "data/tokenizer_files.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "data/unicode_nfc.h"

namespace attnlab::test {
namespace {
namespace fs = std::filesystem;
using data::Tokenizer;

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

void expect_goldens(const Tokenizer& tok, const std::string& golden_file) {
  auto texts = golden_texts();
  auto lines = golden_lines(golden_file);
  ASSERT_GE(texts.size(), 50u);
  ASSERT_EQ(lines.size(), texts.size()) << golden_file << " and texts.txt differ in length";
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids = tok.encode(texts[i]);
    if (ids != parse_ids(lines[i])) {
      ++mismatches;
      ADD_FAILURE() << golden_file << " line " << i << " " << nlohmann::json(texts[i]).dump() << "\n  attnlab: "
                    << ids_str(ids) << "\n  golden:  " << lines[i];
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(TokenizerGoldens, Gpt2MatchesGpt3EncoderOnEveryLine) {
  ATTNLAB_REQUIRE_ASSET("gpt2/encoder.json");
  expect_goldens(cached_tokenizer("gpt2"), "gpt2.txt");
}

TEST(TokenizerGoldens, Qwen3MatchesTransformersJsOnEveryLine) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  expect_goldens(cached_tokenizer("qwen3"), "qwen3.txt");
}

TEST(TokenizerGoldens, KnownValuesFromAssetsMd) {
  ATTNLAB_REQUIRE_ASSET("gpt2/encoder.json");
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  EXPECT_EQ(cached_tokenizer("gpt2").encode("Hello, my dog is cute."),
            (std::vector<int32_t>{15496, 11, 616, 3290, 318, 13779, 13}));
  EXPECT_EQ(cached_tokenizer("qwen3").encode("Hello, my dog is cute."),
            (std::vector<int32_t>{9707, 11, 847, 5562, 374, 18838, 13}));
}

TEST(Tokenizer, Gpt2FileFactsMatchAssetsMd) {
  ATTNLAB_REQUIRE_ASSET("gpt2/encoder.json");
  const Tokenizer& t = cached_tokenizer("gpt2");
  EXPECT_EQ(t.vocab_size(), 50257);
  EXPECT_EQ(t.merge_count(), 50000u);
  EXPECT_EQ(t.token_id("<|endoftext|>"), 50256);
  EXPECT_FALSE(t.uses_nfc());
  EXPECT_EQ(t.encode("<|endoftext|>"), (std::vector<int32_t>{50256}));
  // Without added-token matching the string is ordinary text.
  EXPECT_GT(t.encode("<|endoftext|>", {.match_added_tokens = false}).size(), 1u);
}

TEST(Tokenizer, Qwen3FileFactsMatchAssetsMd) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& t = cached_tokenizer("qwen3");
  EXPECT_EQ(t.merge_count(), 151387u);
  EXPECT_EQ(t.added_tokens().size(), 26u);
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_TRUE(t.uses_nfc());
  EXPECT_EQ(t.token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(t.token_id("<|im_start|>"), 151644);
  EXPECT_EQ(t.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(t.token_id("</think>"), 151668);
  ASSERT_EQ(t.split_patterns().size(), 1u);
  EXPECT_EQ(t.split_patterns()[0], data::kQwenSplitPattern);
}

TEST(Tokenizer, Qwen25IsQwen3WithoutTheLastFourAddedTokens) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& q25 = cached_tokenizer("qwen2.5");
  const Tokenizer& q3 = cached_tokenizer("qwen3");
  EXPECT_EQ(q25.vocab_size(), 151665);
  EXPECT_EQ(q25.added_tokens().size(), 22u);
  EXPECT_FALSE(q25.token_id("<think>").has_value());
  std::string text = "<|im_start|>assistant\n<think>\nhmm\n</think>\n\n<tool_response>x</tool_response><|im_end|>";
  std::vector<int32_t> ids = q25.encode(text);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  for (int32_t id : ids) EXPECT_LT(id, 151665);
  // In between, Qwen2.5 sees plain text: the same ids Qwen3 gives with added tokens off.
  std::vector<int32_t> inner(ids.begin() + 1, ids.end() - 1);
  EXPECT_EQ(inner, q3.encode(text.substr(12, text.size() - 12 - 10), {.match_added_tokens = false}));
  EXPECT_EQ(q25.decode(ids), text);
}

TEST(Tokenizer, DecodeInvertsEncodeOnEveryGoldenText) {
  ATTNLAB_REQUIRE_ASSET("gpt2/encoder.json");
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  for (const std::string& text : golden_texts()) {
    EXPECT_EQ(cached_tokenizer("gpt2").decode(cached_tokenizer("gpt2").encode(text)), text);
    // Qwen normalises to NFC first, so its round trip gives the NFC form.
    EXPECT_EQ(cached_tokenizer("qwen3").decode(cached_tokenizer("qwen3").encode(text)), data::to_nfc(text));
  }
}

TEST(Tokenizer, MobyDickRoundTripsAndSkipsSpecialTokensOnRequest) {
  ATTNLAB_REQUIRE_ASSET("text/moby-dick.txt");
  ATTNLAB_REQUIRE_ASSET("gpt2/encoder.json");
  std::ifstream f(data::asset_path("text/moby-dick.txt"), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(text.size(), 1204997u);
  const Tokenizer& t = cached_tokenizer("gpt2");
  std::vector<int32_t> ids = t.encode(text);
  EXPECT_GT(ids.size(), text.size() / 6);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(t.decode(ids), text);
  std::vector<int32_t> with_eot = {50256};
  with_eot.insert(with_eot.end(), ids.begin(), ids.begin() + 100);
  EXPECT_EQ(t.decode(with_eot, /*skip_special=*/true), t.decode(std::vector<int32_t>(ids.begin(), ids.begin() + 100)));
}

TEST(Tokenizer, OffsetsPointAtEachTokensBytes) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& t = cached_tokenizer("qwen3");
  std::string text = "<|im_start|>user\nCafé 日本語  x<|im_end|>\n";
  std::vector<size_t> offsets;
  std::vector<int32_t> ids = t.encode_with_offsets(text, offsets);
  ASSERT_EQ(ids.size(), offsets.size());
  for (size_t k = 0; k < ids.size(); ++k) {
    size_t end = k + 1 < ids.size() ? offsets[k + 1] : text.size();
    EXPECT_EQ(text.substr(offsets[k], end - offsets[k]), t.decode(std::vector<int32_t>{ids[k]})) << "token " << k;
  }
}

// ---- pre-tokenizer -------------------------------------------------------------------------

std::vector<std::string> pieces(const data::RegexSplitter& s, const std::string& text) {
  std::vector<std::pair<size_t, size_t>> spans;
  s.split(text, spans);
  std::vector<std::string> out;
  for (auto [b, e] : spans) out.push_back(text.substr(b, e - b));
  return out;
}

TEST(Pretokenize, Gpt2PatternKeepsTheLastSpaceForTheNextWord) {
  data::RegexSplitter s(data::kGpt2SplitPattern, "test");
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(s, "Hello   world\n"), (V{"Hello", "  ", " world", "\n"}));
  EXPECT_EQ(pieces(s, "it's 12345 OK'S"), (V{"it", "'s", " 12345", " OK", "'", "S"}));
  EXPECT_EQ(pieces(s, "a\t\tb  "), (V{"a", "\t", "\t", "b", "  "}));  // only a space joins a word
}

TEST(Pretokenize, QwenPatternSplitsDigitsAndFoldsContractionCase) {
  data::RegexSplitter s(data::kQwenSplitPattern, "test");
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(s, "abc123 OK'S"), (V{"abc", "1", "2", "3", " OK", "'S"}));
  EXPECT_EQ(pieces(s, "x  \n\n  y"), (V{"x", "  \n\n", " ", " y"}));
  EXPECT_EQ(pieces(s, "hi!!\n\nthere"), (V{"hi", "!!\n\n", "there"}));
}

TEST(Pretokenize, BadPatternNamesItsOrigin) {
  try {
    data::RegexSplitter s("(unclosed", "tok.json: pre_tokenizer.pattern.Regex");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tok.json: pre_tokenizer.pattern.Regex"), std::string::npos) << e.what();
  }
}

// ---- small fixtures: both merges formats, GPT-2 files, malformed files ----------------------

// A byte-level vocabulary: the 256 byte symbols (ids 0..255 in byte order) plus the merged tokens.
nlohmann::json fixture_vocab(const std::vector<std::string>& merged) {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    std::string sym;
    data::append_utf8(sym, data::byte_to_symbol(uint8_t(b)));
    v[sym] = b;
  }
  int next = 256;
  for (auto& m : merged) v[m] = next++;
  return v;
}

// Merges chosen so that "hello" needs four merges in rank order and " world" (Ġworld) five.
const std::vector<std::pair<std::string, std::string>> kFixtureMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"l", "d"}, {"Ġwor", "ld"}};
const std::vector<std::string> kFixtureMerged = {"he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld"};

nlohmann::json fixture_tokenizer_json(bool pair_merges) {
  nlohmann::json merges = nlohmann::json::array();
  for (auto& [a, b] : kFixtureMerges)
    merges.push_back(pair_merges ? nlohmann::json::array({a, b}) : nlohmann::json(a + " " + b));
  nlohmann::json j = {
      {"version", "1.0"},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", data::kQwenSplitPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"added_tokens",
       {{{"id", 265}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 266}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}}}},
      {"model", {{"type", "BPE"}, {"vocab", fixture_vocab(kFixtureMerged)}, {"merges", merges}}}};
  return j;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "attnlab_tok_XXXXXX").string();
    path = mkdtemp(templ.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return (path / name).string();
  }
};

TEST(TokenizerFixture, BothMergesFormatsGiveTheHandDerivedIds) {
  Tokenizer strings = Tokenizer::from_tokenizer_json_text(fixture_tokenizer_json(false).dump(), "strings.json");
  Tokenizer pairs = Tokenizer::from_tokenizer_json_text(fixture_tokenizer_json(true).dump(), "pairs.json");
  // "hello" -> he, ll -> hell -> hello (id 259); " world" -> Ġw, or, Ġwor, ld, Ġworld (264); then
  // the added token (265); "!" is byte 0x21 = id 33.
  std::vector<int32_t> want = {259, 264, 265, 33};
  EXPECT_EQ(strings.encode("hello world<|end|>!"), want);
  EXPECT_EQ(pairs.encode("hello world<|end|>!"), want);
  for (std::string text : {"hello helloworld wor ld", "hell o\n\n hello  world  ", "é e\u0301 日本 hello"})
    EXPECT_EQ(strings.encode(text), pairs.encode(text)) << text;
  EXPECT_EQ(pairs.decode(pairs.encode("hello world<|end|>!")), "hello world<|end|>!");
  // NFC: e + combining acute is encoded as é (bytes C3 A9 -> ids 0xC3, 0xA9).
  EXPECT_EQ(pairs.encode("e\u0301"), (std::vector<int32_t>{0xC3, 0xA9}));
  EXPECT_EQ(pairs.decode(pairs.encode("ab<|endoftext|>c<|end|>"), /*skip_special=*/true), "abc");
}

TEST(TokenizerFixture, Gpt2FilesAndFolderLoadingAgree) {
  TempDir dir;
  nlohmann::json vocab = fixture_vocab(kFixtureMerged);
  vocab["<|endoftext|>"] = 265;
  std::string merges = "#version: 0.2\n";
  for (auto& [a, b] : kFixtureMerges) merges += a + " " + b + "\n";
  dir.write("vocab.json", vocab.dump());
  dir.write("merges.txt", merges);
  Tokenizer from_folder = Tokenizer::from_path(dir.path.string());
  Tokenizer from_name = Tokenizer::load(dir.path.string());
  // GPT-2's regex gives " world" one piece, as Qwen's does; the ids match the tokenizer.json fixture.
  EXPECT_EQ(from_folder.encode("hello world<|endoftext|>"), (std::vector<int32_t>{259, 264, 265}));
  EXPECT_EQ(from_name.encode("hello world"), from_folder.encode("hello world"));
  fs::rename(dir.path / "vocab.json", dir.path / "encoder.json");
  fs::rename(dir.path / "merges.txt", dir.path / "vocab.bpe");
  EXPECT_EQ(Tokenizer::from_path(dir.path.string()).encode("hello world"), from_folder.encode("hello world"));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

TEST(TokenizerErrors, MalformedMergesLineNamesFileAndLine) {
  TempDir dir;
  std::string vocab = dir.write("vocab.json", fixture_vocab(kFixtureMerged).dump());
  std::string bad_shape = dir.write("merges.txt", "#version: 0.2\nh e\nl l extra\n");
  std::string msg = error_of([&] { Tokenizer::from_gpt2_files(vocab, bad_shape); });
  EXPECT_HAS(msg, bad_shape + ":3");
  EXPECT_HAS(msg, "two tokens");
  std::string unknown = dir.write("merges2.txt", "#version: 0.2\nh e\nq z\n");
  msg = error_of([&] { Tokenizer::from_gpt2_files(vocab, unknown); });
  EXPECT_HAS(msg, unknown + ":3");
  EXPECT_HAS(msg, "\"qz\" is not in the vocabulary");
}

TEST(TokenizerErrors, MalformedVocabNamesFileAndKey) {
  TempDir dir;
  std::string merges = dir.write("merges.txt", "h e\n");
  std::string not_json = dir.write("vocab.json", "{\"a\": 1,");
  std::string msg = error_of([&] { Tokenizer::from_gpt2_files(not_json, merges); });
  EXPECT_HAS(msg, not_json);
  EXPECT_HAS(msg, "not valid JSON");
  nlohmann::json v = fixture_vocab(kFixtureMerged);
  v["he"] = "x";
  std::string bad_id = dir.write("vocab2.json", v.dump());
  msg = error_of([&] { Tokenizer::from_gpt2_files(bad_id, merges); });
  EXPECT_HAS(msg, "[\"he\"]");
  v = fixture_vocab(kFixtureMerged);
  v.erase("Ā");  // the symbol of byte 0x00
  std::string no_byte = dir.write("vocab3.json", v.dump());
  msg = error_of([&] { Tokenizer::from_gpt2_files(no_byte, merges); });
  EXPECT_HAS(msg, "byte 0x0");
}

TEST(TokenizerErrors, MalformedTokenizerJsonNamesTheKey) {
  auto with = [](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = fixture_tokenizer_json(true);
    edit(j);
    return error_of([&] { Tokenizer::from_tokenizer_json_text(j.dump(), "tok.json"); });
  };
  EXPECT_HAS(with([](auto& j) { j["model"]["merges"][1] = nlohmann::json::array({"l"}); }), "tok.json: model.merges[1]");
  EXPECT_HAS(with([](auto& j) { j["model"]["merges"][2] = "he ll extra"; }), "tok.json: model.merges[2]");
  EXPECT_HAS(with([](auto& j) { j["model"]["merges"][0] = nlohmann::json::array({"h", "zz"}); }), "model.merges[0]");
  EXPECT_HAS(with([](auto& j) { j["normalizer"] = {{"type", "Lowercase"}}; }), "tok.json: normalizer.type");
  EXPECT_HAS(with([](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; }),
             "pre_tokenizer.pretokenizers[0].behavior");
  EXPECT_HAS(with([](auto& j) { j["model"].erase("merges"); }), "model.merges is missing");
  EXPECT_HAS(with([](auto& j) { j["model"]["type"] = "Unigram"; }), "model.type");
  EXPECT_HAS(with([](auto& j) { j["added_tokens"][1]["id"] = 265; }), "tok.json: added_tokens[1]");
  EXPECT_HAS(with([](auto& j) { j["added_tokens"][0]["id"] = 259; }), "added_tokens[0]");
  EXPECT_HAS(with([](auto& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}}; }),
             "no ByteLevel step");
  EXPECT_HAS(error_of([] { Tokenizer::from_tokenizer_json_text("[1, 2", "tok.json"); }), "tok.json: not valid JSON");
}

TEST(TokenizerErrors, InvalidUtf8AndUnknownIdsAreReported) {
  Tokenizer t = Tokenizer::from_tokenizer_json_text(fixture_tokenizer_json(true).dump(), "fixture");
  EXPECT_HAS(error_of([&] { t.encode(std::string("ok \xff bad")); }), "not valid UTF-8 at byte 3");
  EXPECT_HAS(error_of([&] { t.decode(std::vector<int32_t>{5, 400}); }), "id 400 is not in the vocabulary");
  EXPECT_HAS(error_of([&] { Tokenizer::from_path("/nonexistent/tokenizer/dir"); }), "neither a built-in name");
}

}  // namespace
}  // namespace attnlab::test

// qwen2.5 is served from Qwen3's files: a folder written for it must name the Qwen2.5 chat
// template, not copy Qwen3's tokenizer_config.json (whose template has the think block).
TEST(TokenizerFiles, Qwen25FolderKeepsTheQwen25ChatFamily) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const std::string dir = ::testing::TempDir() + "/tokfiles_qwen25";
  std::filesystem::remove_all(dir);
  attnlab::data::write_tokenizer_files("qwen2.5", dir);
  const auto family = attnlab::data::chat_family_for_tokenizer(dir);
  ASSERT_TRUE(family.has_value());
  EXPECT_STREQ(attnlab::data::chat_family_name(*family), "qwen2.5");
  const std::string dir3 = ::testing::TempDir() + "/tokfiles_qwen3";
  std::filesystem::remove_all(dir3);
  attnlab::data::write_tokenizer_files("qwen3", dir3);
  const auto family3 = attnlab::data::chat_family_for_tokenizer(dir3);
  ASSERT_TRUE(family3.has_value());
  EXPECT_STREQ(attnlab::data::chat_family_name(*family3), "qwen3");
}
