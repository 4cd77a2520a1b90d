// Reading tokenizers: GPT-2 vocab.json + merges.txt, HF tokenizer.json, folders, built-in names.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/assets.h"
#include "data/input_check.h"
#include "data/tokenizer_impl.h"
#include "data/unicode_nfc.h"

namespace attnlab::data {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Kind = Tokenizer::Impl::Kind;

namespace {

constexpr const char* kRefetch = "re-fetch it (`attnlab assets fetch`) or fix the file";

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  INPUT_CHECK(f.good(), "cannot read the ", what, " '", path, "'; check the path");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse_json(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    FAIL_WITH(source, ": not valid JSON (byte ", e.byte, ": ", e.what(), "); ", kRefetch);
  }
}

// Vocabulary: token string (byte-level symbols) -> id.
void read_vocab(Tokenizer::Impl& t, const json& vocab, const std::string& where) {
  INPUT_CHECK(vocab.is_object(), where, ": expected a JSON object mapping token strings to ids, found ",
              vocab.type_name(), "; ", kRefetch);
  t.vocab.reserve(vocab.size());
  std::vector<const std::string*> owner;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string& token = it.key();
    INPUT_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 &&
                    it.value().get<int64_t>() < (int64_t(1) << 30),
                where, "[\"", token, "\"]: the id must be a non-negative integer, found ", it.value().dump(), "; ",
                kRefetch);
    int32_t id = it.value().get<int32_t>();
    if (size_t(id) >= owner.size()) owner.resize(size_t(id) + 1, nullptr);
    INPUT_CHECK(owner[size_t(id)] == nullptr, where, "[\"", token, "\"]: id ", id, " is also used by \"",
                *owner[size_t(id)], "\"; every token needs its own id; ", kRefetch);
    auto [pos, inserted] = t.vocab.emplace(token, id);
    owner[size_t(id)] = &pos->first;
    std::string bytes;
    // Tokens outside the byte alphabet (none in GPT-2 or Qwen) decode to their own UTF-8.
    if (!byte_level_to_bytes(token, bytes)) bytes = token;
    t.set_id(id, token, std::move(bytes), Kind::vocab);
  }
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, byte_to_symbol(uint8_t(b)));
    auto it = t.vocab.find(symbol);
    INPUT_CHECK(it != t.vocab.end(), where, ": no token for the byte 0x", std::hex, b, std::dec, " (symbol \"",
                symbol, "\"); attnlab reads byte-level BPE vocabularies (GPT-2 style), which hold all 256");
    t.byte_ids[b] = it->second;
  }
}

// One merge rule; `where` names its line or JSON index.
void add_merge(Tokenizer::Impl& t, std::string_view left, std::string_view right, int32_t rank,
               const std::string& where) {
  auto l = t.vocab.find(left), r = t.vocab.find(right);
  INPUT_CHECK(l != t.vocab.end(), where, ": merge token \"", left, "\" is not in the vocabulary; ",
              "the merges belong to a different vocab, or the file is damaged; ", kRefetch);
  INPUT_CHECK(r != t.vocab.end(), where, ": merge token \"", right, "\" is not in the vocabulary; ",
              "the merges belong to a different vocab, or the file is damaged; ", kRefetch);
  std::string joined = std::string(left) + std::string(right);
  auto m = t.vocab.find(joined);
  INPUT_CHECK(m != t.vocab.end(), where, ": the merged token \"", joined, "\" is not in the vocabulary; ",
              "the merges belong to a different vocab, or the file is damaged; ", kRefetch);
  t.merges.insert(l->second, r->second, rank, m->second);  // a repeated pair keeps its first rank
}

// "a b" -> (a, b): exactly one space, both sides non-empty.
bool split_merge_string(std::string_view s, std::string_view& a, std::string_view& b) {
  size_t sp = s.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string_view::npos)
    return false;
  a = s.substr(0, sp);
  b = s.substr(sp + 1);
  return true;
}

void add_gpt2_endoftext(Tokenizer::Impl& t) {
  auto it = t.vocab.find("<|endoftext|>");
  if (it == t.vocab.end()) return;
  AddedToken eot;
  eot.content = "<|endoftext|>";
  eot.id = it->second;
  eot.special = true;
  t.added.push_back(eot);
}

std::string escape_literal_for_pcre(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (!std::isalnum(uint8_t(c)) && uint8_t(c) < 0x80) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool json_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  INPUT_CHECK(obj[key].is_boolean(), where, ".", key, ": expected true or false, found ", obj[key].dump());
  return obj[key].get<bool>();
}

void read_normalizer(Tokenizer::Impl& t, const json& n, const std::string& where) {
  if (n.is_null()) return;
  std::string type = n.value("type", "");
  if (type == "NFC") {
    t.nfc = true;
  } else if (type == "Sequence") {
    INPUT_CHECK(n.contains("normalizers") && n["normalizers"].is_array(), where,
                ".normalizers: expected an array");
    for (size_t i = 0; i < n["normalizers"].size(); ++i)
      read_normalizer(t, n["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]");
  } else {
    FAIL_WITH(where, ".type: normalizer \"", type, "\" is not supported; attnlab implements NFC (and Sequence of ",
              "it), which GPT-2 and Qwen use; remove it or convert the tokenizer");
  }
}

void read_pre_tokenizer(Tokenizer::Impl& t, const json& p, const std::string& where, bool& saw_byte_level) {
  if (p.is_null()) return;
  std::string type = p.value("type", "");
  if (type == "Sequence") {
    INPUT_CHECK(p.contains("pretokenizers") && p["pretokenizers"].is_array(), where,
                ".pretokenizers: expected an array");
    for (size_t i = 0; i < p["pretokenizers"].size(); ++i)
      read_pre_tokenizer(t, p["pretokenizers"][i], where + ".pretokenizers[" + std::to_string(i) + "]",
                         saw_byte_level);
  } else if (type == "ByteLevel") {
    saw_byte_level = true;
    t.add_prefix_space = json_bool(p, "add_prefix_space", false, where);
    // HF adds the prefix space to every piece an earlier Split made; attnlab adds it once per
    // segment, which is the same only when ByteLevel comes first.
    INPUT_CHECK(!t.add_prefix_space || t.splitters.empty(), where, ".add_prefix_space: true after a Split ",
                "pre-tokenizer is not supported");
    if (json_bool(p, "use_regex", true, where)) t.splitters.emplace_back(kGpt2SplitPattern, where);
  } else if (type == "Split") {
    INPUT_CHECK(p.contains("pattern") && p["pattern"].is_object(), where,
                ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    const json& pat = p["pattern"];
    std::string regex;
    if (pat.contains("Regex") && pat["Regex"].is_string()) regex = pat["Regex"].get<std::string>();
    else if (pat.contains("String") && pat["String"].is_string()) regex = escape_literal_for_pcre(pat["String"]);
    else FAIL_WITH(where, ".pattern: expected {\"Regex\": \"...\"} or {\"String\": \"...\"}, found ", pat.dump());
    std::string behavior = p.value("behavior", "Isolated");
    INPUT_CHECK(behavior == "Isolated", where, ".behavior: \"", behavior, "\" is not supported; attnlab ",
                "implements \"Isolated\" (each match its own piece), which GPT-2 and Qwen use");
    INPUT_CHECK(!json_bool(p, "invert", false, where), where, ".invert: true is not supported");
    t.splitters.emplace_back(regex, where + ".pattern.Regex");
  } else {
    FAIL_WITH(where, ".type: pre-tokenizer \"", type, "\" is not supported; attnlab implements Split (Isolated), ",
              "ByteLevel and Sequence, which GPT-2 and Qwen use");
  }
}

void read_added_tokens(Tokenizer::Impl& t, const json& arr, const std::string& where) {
  if (arr.is_null()) return;
  INPUT_CHECK(arr.is_array(), where, ": expected an array of added tokens, found ", arr.type_name());
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string w = where + "[" + std::to_string(i) + "]";
    const json& a = arr[i];
    INPUT_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer() && a["id"].get<int64_t>() >= 0 &&
                    a.contains("content") && a["content"].is_string() && !a["content"].get<std::string>().empty(),
                w, ": expected {\"id\": non-negative integer, \"content\": non-empty string, ...}, found ", a.dump());
    AddedToken tok;
    tok.id = a["id"].get<int32_t>();
    tok.content = a["content"].get<std::string>();
    tok.special = json_bool(a, "special", false, w);
    tok.normalized = json_bool(a, "normalized", !tok.special, w);
    tok.lstrip = json_bool(a, "lstrip", false, w);
    tok.rstrip = json_bool(a, "rstrip", false, w);
    INPUT_CHECK(!json_bool(a, "single_word", false, w), w, ".single_word: true is not supported (", tok.content,
                ")");
    INPUT_CHECK(find_invalid_utf8(tok.content) == std::string::npos, w, ".content is not valid UTF-8");
    auto in_vocab = t.vocab.find(tok.content);
    INPUT_CHECK(in_vocab == t.vocab.end() || in_vocab->second == tok.id, w, ": \"", tok.content, "\" has id ", tok.id,
                " but the vocabulary gives it id ", in_vocab->second, "; the ids must agree");
    INPUT_CHECK(size_t(tok.id) >= t.id_kind.size() || t.id_kind[size_t(tok.id)] == Kind::gap ||
                    t.id_to_token[size_t(tok.id)] == tok.content,
                w, ": id ", tok.id, " (\"", tok.content, "\") is already the vocabulary token \"",
                t.id_to_token[size_t(tok.id)], "\"");
    for (auto& other : t.added)
      INPUT_CHECK(other.id != tok.id && other.content != tok.content, w, ": \"", tok.content, "\" (id ", tok.id,
                  ") repeats added token \"", other.content, "\" (id ", other.id, ")");
    t.added.push_back(tok);
  }
}

}  // namespace

Tokenizer Tokenizer::from_gpt2_files(const std::string& vocab_json, const std::string& merges_txt) {
  auto t = std::make_unique<Impl>();
  t->source = vocab_json + " + " + merges_txt;
  read_vocab(*t, parse_json(read_file(vocab_json, "vocabulary (vocab.json)"), vocab_json), vocab_json);

  std::string merges = read_file(merges_txt, "merges file (merges.txt)");
  std::istringstream in(merges);
  std::string line;
  int line_no = 0, rank = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    std::string_view a, b;
    std::string where = merges_txt + ":" + std::to_string(line_no);
    INPUT_CHECK(split_merge_string(line, a, b), where, ": expected two tokens separated by one space, found \"", line,
                "\"; ", kRefetch);
    add_merge(*t, a, b, rank++, where);
  }
  INPUT_CHECK(rank > 0, merges_txt, ": no merge rules found; ", kRefetch);
  t->splitters.emplace_back(kGpt2SplitPattern, "GPT-2 pre-tokenizer");
  add_gpt2_endoftext(*t);
  t->finish_added_tokens();
  return Tokenizer(std::move(t));
}

Tokenizer Tokenizer::from_tokenizer_json_text(const std::string& text, const std::string& source) {
  json root = parse_json(text, source);
  INPUT_CHECK(root.is_object(), source, ": expected a JSON object at the top level; ", kRefetch);
  INPUT_CHECK(root.contains("model") && root["model"].is_object(), source,
              ": key \"model\" (the BPE vocabulary and merges) is missing; ", kRefetch);
  const json& model = root["model"];
  std::string type = model.value("type", "BPE");
  INPUT_CHECK(type == "BPE", source, ": model.type is \"", type, "\"; attnlab reads byte-level BPE tokenizers only");
  INPUT_CHECK(!json_bool(model, "byte_fallback", false, source + ": model"), source,
              ": model.byte_fallback is true (a SentencePiece-style tokenizer); attnlab reads byte-level BPE only");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    INPUT_CHECK(!model.contains(key) || model[key].is_null() || model[key] == "", source, ": model.", key, " is ",
                model[key].dump(), "; attnlab's byte-level BPE supports only an empty one");
  INPUT_CHECK(!model.contains("dropout") || model["dropout"].is_null() || model["dropout"] == 0, source,
              ": model.dropout is ", model.contains("dropout") ? model["dropout"].dump() : "",
              "; BPE dropout is not supported (set it to null)");
  INPUT_CHECK(model.contains("vocab"), source, ": key model.vocab is missing; ", kRefetch);
  INPUT_CHECK(model.contains("merges") && model["merges"].is_array(), source,
              ": key model.merges is missing or not an array; ", kRefetch);

  auto t = std::make_unique<Impl>();
  t->source = source;
  read_vocab(*t, model["vocab"], source + ": model.vocab");
  t->ignore_merges = json_bool(model, "ignore_merges", false, source + ": model");
  const json& merges = model["merges"];
  t->merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string where = source + ": model.merges[" + std::to_string(i) + "]";
    std::string_view a, b;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      INPUT_CHECK(split_merge_string(s, a, b), where, ": expected \"left right\" (one space), found ", m.dump(),
                  "; ", kRefetch);
    } else {
      INPUT_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), where,
                  ": expected \"left right\" or [\"left\", \"right\"], found ", m.dump(), "; ", kRefetch);
      a = m[0].get_ref<const std::string&>();
      b = m[1].get_ref<const std::string&>();
    }
    add_merge(*t, a, b, int32_t(i), where);
  }
  read_normalizer(*t, root.value("normalizer", json()), source + ": normalizer");
  bool saw_byte_level = false;
  read_pre_tokenizer(*t, root.value("pre_tokenizer", json()), source + ": pre_tokenizer", saw_byte_level);
  INPUT_CHECK(saw_byte_level, source, ": pre_tokenizer has no ByteLevel step; attnlab reads byte-level BPE ",
              "tokenizers (GPT-2, Qwen, Llama 3) only");
  read_added_tokens(*t, root.value("added_tokens", json()), source + ": added_tokens");
  t->finish_added_tokens();
  return Tokenizer(std::move(t));
}

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
  return from_tokenizer_json_text(read_file(path, "tokenizer file (tokenizer.json)"), path);
}

Tokenizer Tokenizer::from_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json")) return from_tokenizer_json((dir / "tokenizer.json").string());
    if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))
      return from_gpt2_files((dir / "vocab.json").string(), (dir / "merges.txt").string());
    if (fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe"))
      return from_gpt2_files((dir / "encoder.json").string(), (dir / "vocab.bpe").string());
    FAIL_WITH("no tokenizer in '", path, "': expected tokenizer.json, or vocab.json + merges.txt, or ",
              "encoder.json + vocab.bpe");
  }
  INPUT_CHECK(fs::is_regular_file(path, ec), "tokenizer '", path, "' is neither a built-in name (",
              "gpt2, qwen2.5, qwen3) nor an existing file or folder");
  fs::path p(path);
  if (p.filename() == "vocab.json" && fs::exists(p.parent_path() / "merges.txt"))
    return from_gpt2_files(path, (p.parent_path() / "merges.txt").string());
  if (p.filename() == "encoder.json" && fs::exists(p.parent_path() / "vocab.bpe"))
    return from_gpt2_files(path, (p.parent_path() / "vocab.bpe").string());
  return from_tokenizer_json(path);
}

std::vector<std::string> builtin_tokenizer_names() { return {"gpt2", "qwen2.5", "qwen3"}; }

Tokenizer Tokenizer::load(const std::string& name_or_path) {
  if (name_or_path == "gpt2")
    return from_gpt2_files(require_asset("gpt2/encoder.json"), require_asset("gpt2/vocab.bpe"));
  if (name_or_path == "qwen3") return from_tokenizer_json(require_asset("qwen3/tokenizer.json"));
  if (name_or_path == "qwen2.5") {
    // Qwen2.5 shares Qwen3's vocabulary, merges, normaliser and regex; its added tokens stop
    // at <|file_sep|> (151664), before Qwen3's <tool_response>, </tool_response>, <think>, </think>.
    Tokenizer t = from_tokenizer_json(require_asset("qwen3/tokenizer.json"));
    t.drop_added_tokens_above(151664);
    t.impl_->source = name_or_path + " (" + t.impl_->source + " without Qwen3's added tokens above 151664)";
    return t;
  }
  return from_path(name_or_path);
}

}  // namespace attnlab::data
