#include "data/tokenizer_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/assets.h"
#include "data/chat_template.h"
#include "data/input_check.h"

namespace attnlab::data {

namespace fs = std::filesystem;

namespace {

void copy_tokenizer_file(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  INPUT_CHECK(!ec, "cannot copy tokenizer file '", from.string(), "' to '", to.string(), "': ", ec.message());
}

// Where the files of a tokenizer are: the built-in names' cache files, or the folder of a path.
struct Source {
  fs::path tokenizer_json, vocab_json, merges_txt;
  int32_t max_added_id = -1;  // qwen2.5: keep added tokens up to this id
};

Source find_source(const std::string& name_or_path) {
  Source s;
  if (name_or_path == "gpt2") {
    s.vocab_json = require_asset("gpt2/encoder.json");
    s.merges_txt = require_asset("gpt2/vocab.bpe");
    return s;
  }
  if (name_or_path == "qwen3" || name_or_path == "qwen2.5") {
    s.tokenizer_json = require_asset("qwen3/tokenizer.json");
    if (name_or_path == "qwen2.5") s.max_added_id = 151664;
    return s;
  }
  std::error_code ec;
  fs::path p(name_or_path);
  fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  if (fs::is_regular_file(p, ec) && p.filename() != "vocab.json" && p.filename() != "encoder.json") {
    s.tokenizer_json = p;
  } else if (fs::exists(dir / "tokenizer.json")) {
    s.tokenizer_json = dir / "tokenizer.json";
  } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    s.vocab_json = dir / "vocab.json";
    s.merges_txt = dir / "merges.txt";
  } else if (fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe")) {
    s.vocab_json = dir / "encoder.json";
    s.merges_txt = dir / "vocab.bpe";
  } else {
    FAIL_WITH("tokenizer '", name_or_path, "' is neither a built-in name (gpt2, qwen2.5, qwen3) nor a folder or file ",
              "holding tokenizer.json, vocab.json + merges.txt or encoder.json + vocab.bpe");
  }
  return s;
}

}  // namespace

std::vector<std::string> write_tokenizer_files(const std::string& name_or_path, const std::string& folder) {
  const Source s = find_source(name_or_path);
  const fs::path out(folder);
  std::error_code ec;
  fs::create_directories(out, ec);
  INPUT_CHECK(!ec, "cannot create folder '", folder, "': ", ec.message());
  std::vector<std::string> written;
  if (!s.tokenizer_json.empty()) {
    if (s.max_added_id < 0) {
      if (fs::absolute(s.tokenizer_json) != fs::absolute(out / "tokenizer.json"))
        copy_tokenizer_file(s.tokenizer_json, out / "tokenizer.json");
    } else {
      std::ifstream in(s.tokenizer_json);
      // nlohmann::json, not ordered_json: ordered_json's object inserts are linear scans, quadratic
      // over the 151k-entry vocab (22 s of CPU per folder); object key order carries no meaning.
      auto j = nlohmann::json::parse(in, nullptr, false);
      INPUT_CHECK(!j.is_discarded() && j.is_object(), "'", s.tokenizer_json.string(), "' is not JSON");
      nlohmann::json kept = nlohmann::json::array();
      for (const auto& t : j.value("added_tokens", nlohmann::json::array()))
        if (t.value("id", 0) <= s.max_added_id) kept.push_back(t);
      j["added_tokens"] = kept;
      std::ofstream(out / "tokenizer.json") << j.dump();
    }
    written.push_back("tokenizer.json");
  } else {
    if (fs::absolute(s.vocab_json) != fs::absolute(out / "vocab.json")) copy_tokenizer_file(s.vocab_json, out / "vocab.json");
    if (fs::absolute(s.merges_txt) != fs::absolute(out / "merges.txt")) copy_tokenizer_file(s.merges_txt, out / "merges.txt");
    written.push_back("vocab.json");
    written.push_back("merges.txt");
  }
  // The chat family (for --chat and SFT), from the source folder's own config or the name. qwen2.5
  // is derived from Qwen3's files, whose tokenizer_config.json names the Qwen3 template: it writes
  // its own family instead.
  const bool derived = s.max_added_id >= 0;
  const fs::path src_config = (s.tokenizer_json.empty() ? s.vocab_json : s.tokenizer_json).parent_path() /
                              "tokenizer_config.json";
  if (!derived && fs::exists(src_config) && fs::absolute(src_config) != fs::absolute(out / "tokenizer_config.json")) {
    copy_tokenizer_file(src_config, out / "tokenizer_config.json");
    written.push_back("tokenizer_config.json");
  } else if (auto family = chat_family_for_tokenizer(name_or_path)) {
    nlohmann::ordered_json cfg = {{"attnlab_chat_family", chat_family_name(*family)},
                                  {"model_max_length", 32768},
                                  {"tokenizer_class", "Qwen2Tokenizer"}};
    std::ofstream(out / "tokenizer_config.json") << cfg.dump(2) << "\n";
    written.push_back("tokenizer_config.json");
  }
  return written;
}

bool folder_has_tokenizer(const std::string& folder) {
  const fs::path dir(folder);
  return fs::exists(dir / "tokenizer.json") || (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) ||
         (fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe"));
}

}  // namespace attnlab::data
