#include "data/sft.h"

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "data/input_check.h"

namespace attnlab::data {

namespace {

std::string keys_of(const nlohmann::json& j) {
  std::string keys;
  for (auto& [k, v] : j.items()) keys += (keys.empty() ? "\"" : ", \"") + k + "\"";
  return keys.empty() ? "none" : keys;
}

// The name a schema field has in the user's files.
std::string file_name_of(const SftOptions& opt, const std::string& schema_field) {
  auto it = opt.fields.find(schema_field);
  return it == opt.fields.end() ? schema_field : it->second;
}

const nlohmann::json& field(const nlohmann::json& rec, const std::string& schema_field, const std::string& where,
                            const SftOptions& opt) {
  const std::string name = file_name_of(opt, schema_field);
  auto it = rec.find(name);
  if (it == rec.end())
    FAIL_WITH(where, ": ", sft_format_name(opt.format), " record has no \"", name, "\" field (it has ", keys_of(rec),
              "); if your files call it differently, map it with data.fields: {", schema_field, ": <your field>}");
  return *it;
}

std::string string_field(const nlohmann::json& rec, const std::string& schema_field, const std::string& where,
                         const SftOptions& opt) {
  const nlohmann::json& v = field(rec, schema_field, where, opt);
  INPUT_CHECK(v.is_string(), where, ": field \"", file_name_of(opt, schema_field), "\" is a JSON ", v.type_name(),
              ", expected a string");
  return v.get<std::string>();
}

// SST's sentence: `sentence` (glue/sst2), else `text` (SetFit/sst5), unless data.fields says.
std::string sst_sentence(const nlohmann::json& rec, const std::string& where, const SftOptions& opt) {
  if (!opt.fields.count("sentence") && !rec.contains("sentence") && rec.contains("text")) {
    SftOptions alias = opt;
    alias.fields["sentence"] = "text";
    return string_field(rec, "sentence", where, alias);
  }
  return string_field(rec, "sentence", where, opt);
}

int sst_label(const nlohmann::json& rec, const std::string& where, const SftOptions& opt) {
  const nlohmann::json& v = field(rec, "label", where, opt);
  int64_t label = -1;
  if (v.is_number_integer()) label = v.get<int64_t>();
  else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    const bool digits = !s.empty() && s.size() < 4 && s.find_first_not_of("0123456789") == std::string::npos;
    INPUT_CHECK(digits, where, ": label \"", s, "\" is not a class number (0-4)");
    label = std::stoll(s);
  } else {
    FAIL_WITH(where, ": label is a JSON ", v.type_name(), ", expected a class number");
  }
  INPUT_CHECK(label >= 0 && label < 5, where, ": label ", label, " is not a class number (0-4)");
  return int(label);
}

}  // namespace

SftFormat parse_sft_format(const std::string& s) {
  if (s == "openr1") return SftFormat::openr1;
  if (s == "openmath") return SftFormat::openmath;
  if (s == "gsm8k") return SftFormat::gsm8k;
  if (s == "sst") return SftFormat::sst;
  FAIL_WITH("unknown SFT format '", s, "'; use openr1, openmath, gsm8k or sst");
}

const char* sft_format_name(SftFormat f) {
  switch (f) {
    case SftFormat::openr1: return "openr1";
    case SftFormat::openmath: return "openmath";
    case SftFormat::gsm8k: return "gsm8k";
    case SftFormat::sst: return "sst";
  }
  return "?";
}

size_t select_openr1_generation(const nlohmann::json& rec, const std::string& where, const SftOptions& opt) {
  SftOptions o = opt;
  o.format = SftFormat::openr1;
  const nlohmann::json& gens = field(rec, "generations", where, o);
  INPUT_CHECK(gens.is_array() && !gens.empty(), where, ": \"generations\" must be a non-empty list of strings, found ",
              gens.is_array() ? "an empty list" : gens.type_name());
  for (size_t i = 0; i < gens.size(); ++i)
    INPUT_CHECK(gens[i].is_string(), where, ": generations[", i, "] is a JSON ", gens[i].type_name(), ", expected a string");
  const std::string flags_name = file_name_of(o, "correctness_math_verify");
  auto it = rec.find(flags_name);
  if (it == rec.end() || it->is_null()) return 0;  // no verification: the first generation
  INPUT_CHECK(it->is_array(), where, ": \"", flags_name, "\" must be a list of booleans, found ", it->type_name());
  INPUT_CHECK(it->size() == gens.size(), where, ": \"", flags_name, "\" has ", it->size(), " flags for ", gens.size(),
              " generations; they must be aligned");
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& f = (*it)[i];
    INPUT_CHECK(f.is_boolean() || f.is_null(), where, ": ", flags_name, "[", i, "] is a JSON ", f.type_name(),
                ", expected true/false");
    if (f.is_boolean() && f.get<bool>()) return i;
  }
  return 0;
}

const std::string& sst_label_word(int classes, int label) {
  static const std::vector<std::string> two = {"negative", "positive"};
  static const std::vector<std::string> five = {"terrible", "bad", "neutral", "good", "great"};
  INPUT_CHECK(classes == 2 || classes == 5, "SST has 2 or 5 classes, not ", classes);
  INPUT_CHECK(label >= 0 && label < classes, "SST-", classes, " label ", label, " is out of range 0-", classes - 1,
              "; is this an SST-5 file read as SST-2?");
  return classes == 2 ? two[size_t(label)] : five[size_t(label)];
}

int infer_sst_classes(const CorpusOptions& source, const SftOptions& opt) {
  int classes = 2;
  for_each_record(source, [&](const nlohmann::json& rec, const std::string& where) {
    if (rec.contains("label_text") || sst_label(rec, where, opt) > 1) classes = 5;
  });
  return classes;
}

SftText sft_text(const nlohmann::json& rec, const std::string& where, const SftOptions& opt) {
  SftText t;
  switch (opt.format) {
    case SftFormat::openr1: {
      INPUT_CHECK(opt.chat.has_value(), "openr1 records are rendered through a chat template; use a tokenizer with ",
                  "one (qwen2.5, qwen3, or a folder whose tokenizer_config.json has a Qwen chat_template)");
      const size_t pick = select_openr1_generation(rec, where, opt);
      const nlohmann::json& gens = field(rec, "generations", where, opt);
      t.chat = true;
      t.messages = {{"user", string_field(rec, "problem", where, opt)}, {"assistant", gens[pick].get<std::string>()}};
      return t;
    }
    case SftFormat::openmath: {
      const std::string problem = string_field(rec, "problem", where, opt);
      const std::string solution = string_field(rec, "generated_solution", where, opt);
      if (opt.chat) {
        t.chat = true;
        t.messages = {{"user", problem}, {"assistant", solution}};
      } else {
        t.prompt = "Problem: " + problem + "\nSolution: ";
        t.target = solution + "\nFinal answer: " + string_field(rec, "expected_answer", where, opt);
        t.add_eos = true;
      }
      return t;
    }
    case SftFormat::gsm8k: {
      const std::string question = string_field(rec, "question", where, opt);
      const std::string answer = string_field(rec, "answer", where, opt);
      if (opt.chat) {
        t.chat = true;
        t.messages = {{"user", question}, {"assistant", answer}};
      } else {
        t.prompt = "Question: " + question + "\nAnswer: ";
        t.target = answer;
        t.add_eos = true;
      }
      return t;
    }
    case SftFormat::sst: {
      const int classes = opt.sst_classes;
      INPUT_CHECK(classes == 2 || classes == 5, "SST class count must be 2 or 5 (got ", classes, ")");
      const int label = sst_label(rec, where, opt);
      INPUT_CHECK(label < classes, where, ": label ", label, " in an SST-", classes, " file (labels 0-", classes - 1, ")");
      t.prompt = "Sentence: " + sst_sentence(rec, where, opt) + " Label:";
      t.target = " " + sst_label_word(classes, label);
      return t;
    }
  }
  return t;
}

TokenizedDoc tokenize_sft(const SftText& text, const Tokenizer& tokenizer, std::optional<ChatFamily> chat) {
  TokenizedDoc d;
  if (text.chat) {
    CHECK(chat.has_value(), "a chat record needs a chat family");
    EncodedChat e = encode_chat(tokenizer, *chat, text.messages);
    d.ids = std::move(e.ids);
    d.mask = std::move(e.assistant_mask);
    return d;
  }
  // One encoding of prompt + target (as HF tokenises the joined string), then the target is every
  // token that ends after the prompt.
  const std::string prompt = tokenizer.normalize(text.prompt);
  const std::string joined = prompt + tokenizer.normalize(text.target);
  std::vector<size_t> offsets;
  d.ids = tokenizer.encode_with_offsets(joined, offsets);
  d.mask.resize(d.ids.size());
  for (size_t k = 0; k < d.ids.size(); ++k) {
    const size_t end = k + 1 < offsets.size() ? offsets[k + 1] : joined.size();
    d.mask[k] = end > prompt.size();
  }
  if (text.add_eos) {
    const std::optional<int32_t> eos = tokenizer.token_id("<|endoftext|>");
    INPUT_CHECK(eos.has_value(), "tokenizer ", tokenizer.source(), " has no <|endoftext|> token to end SFT targets with");
    d.ids.push_back(*eos);
    d.mask.push_back(1);
  }
  return d;
}

PrepareResult prepare_sft_shards(const CorpusOptions& source, SftOptions opt, const Tokenizer& tokenizer,
                                 const std::string& tokenizer_name, const std::string& shard_dir,
                                 const PrepareOptions& prep) {
  INPUT_CHECK(source.format == CorpusFormat::jsonl || (source.format == CorpusFormat::tsv && opt.format == SftFormat::sst),
              "SFT records of format ", sft_format_name(opt.format), " are read from ",
              opt.format == SftFormat::sst ? "jsonl or tsv" : "jsonl", " files, not ", corpus_format_name(source.format));
  if (opt.format == SftFormat::sst) opt.chat.reset();  // METHODS §2.3: raw text
  else if (!opt.chat) opt.chat = chat_family_for_tokenizer(tokenizer_name);
  if (opt.format == SftFormat::sst && opt.sst_classes == 0) {
    opt.sst_classes = infer_sst_classes(source, opt);
    log_info("SST records: ", opt.sst_classes, " classes (", opt.sst_classes == 5 ? "label_text or labels above 1 seen" : "labels 0/1 only", ")");
  }
  ShardSpec spec;
  spec.with_mask = true;
  spec.identity = std::string("sft format=") + sft_format_name(opt.format) + " classes=" +
                  std::to_string(opt.sst_classes) + " chat=" + (opt.chat ? chat_family_name(*opt.chat) : "none") +
                  " tsv_header=" + std::to_string(source.tsv_header) + " fields=";
  for (auto& [k, v] : opt.fields) spec.identity += k + ":" + v + ",";
  spec.identity += "\n" + files_identity(source.path, corpus_files(source.path, source.format));
  spec.produce = [&](const std::function<void(TokenizeTask&&)>& emit) {
    for_each_record(source, [&](const nlohmann::json& rec, const std::string& where) {
      emit([&tokenizer, chat = opt.chat, text = sft_text(rec, where, opt)] { return tokenize_sft(text, tokenizer, chat); });
    });
  };
  return prepare_shards(spec, tokenizer, shard_dir, prep);
}

}  // namespace attnlab::data
