#include "data/chat_template.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/input_check.h"

namespace attnlab::data {
namespace {

constexpr const char* kQwen2System = "You are a helpful assistant.";
constexpr const char* kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
std::string lstrip_newlines(const std::string& s) { return s.substr(std::min(s.find_first_not_of('\n'), s.size())); }
std::string rstrip_newlines(const std::string& s) {
  size_t last = s.find_last_not_of('\n');
  return last == std::string::npos ? std::string() : s.substr(0, last + 1);
}

struct Writer {
  RenderedChat out;
  // A complete <|im_start|>{role}\n{body}<|im_end|>\n turn whose body starts with `prefix`
  // (Qwen3's think block), then the content.
  void turn(int message, const std::string& role, const std::string& prefix, const std::string& content) {
    ChatTurn t{message, role, out.text.size(), 0, 0, 0};
    out.text += "<|im_start|>" + role + "\n";
    t.body_begin = out.text.size();
    out.text += prefix + content + "<|im_end|>";
    t.body_end = out.text.size();
    out.text += "\n";
    t.end = out.text.size();
    out.turns.push_back(t);
  }
  // Consecutive tool results share one user turn: each is "\n<tool_response>\n{content}\n</tool_response>".
  void tool(int message, bool opens, bool closes, const std::string& content) {
    ChatTurn t{message, "tool", out.text.size(), 0, 0, 0};
    if (opens) out.text += "<|im_start|>user";
    out.text += "\n<tool_response>\n";
    t.body_begin = out.text.size();
    out.text += content + "\n</tool_response>";
    t.body_end = out.text.size();
    if (closes) out.text += "<|im_end|>\n";
    t.end = out.text.size();
    out.turns.push_back(t);
  }
  void generation_prompt(const std::string& after_header) {
    ChatTurn t{-1, "assistant", out.text.size(), 0, 0, 0};
    out.text += "<|im_start|>assistant\n" + after_header;
    t.body_begin = t.body_end = t.end = out.text.size();
    out.turns.push_back(t);
  }
};

void check_roles(const std::vector<ChatMessage>& messages, ChatFamily family) {
  INPUT_CHECK(!messages.empty(), "a chat needs at least one message");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    bool known = r == "system" || r == "user" || r == "assistant" || r == "tool";
    INPUT_CHECK(family == ChatFamily::qwen2 || known, "message ", i, " has role '", r, "'; the ",
                chat_family_name(family), " chat template renders system, user, assistant and tool messages only");
    INPUT_CHECK(!r.empty(), "message ", i, " has an empty role");
  }
}

void render_qwen2_family(Writer& w, const std::vector<ChatMessage>& m, ChatFamily family, const ChatOptions& opt) {
  bool has_system = m[0].role == "system";
  if (!has_system) w.turn(-1, "system", "", family == ChatFamily::qwen2 ? kQwen2System : kQwen25System);
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].role == "tool" && family == ChatFamily::qwen2_5) {
      bool opens = i == 0 || m[i - 1].role != "tool";
      bool closes = i + 1 == m.size() || m[i + 1].role != "tool";
      w.tool(int(i), opens, closes, m[i].content);
    } else {
      w.turn(int(i), m[i].role, "", m[i].content);
    }
  }
  if (opt.add_generation_prompt) w.generation_prompt("");
}

void render_qwen3(Writer& w, const std::vector<ChatMessage>& m, const ChatOptions& opt) {
  // The last user message that is a real query (not a tool response wrapped as user text).
  int last_query = int(m.size()) - 1;
  for (int i = int(m.size()) - 1; i >= 0; --i) {
    const std::string& c = m[size_t(i)].content;
    if (m[size_t(i)].role == "user" && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "system" || msg.role == "user") {
      w.turn(int(i), msg.role, "", msg.content);
    } else if (msg.role == "assistant") {
      std::string content = msg.content, reasoning;
      size_t close = content.find("</think>");
      if (close != std::string::npos) {
        std::string before = rstrip_newlines(content.substr(0, close));
        size_t open = before.rfind("<think>");
        reasoning = lstrip_newlines(open == std::string::npos ? before : before.substr(open + 7));
        content = lstrip_newlines(content.substr(content.rfind("</think>") + 8));
      }
      bool last = i + 1 == m.size();
      if (int(i) > last_query && (last || !reasoning.empty()))
        w.turn(int(i), "assistant", "<think>\n" + lstrip_newlines(rstrip_newlines(reasoning)) + "\n</think>\n\n",
               lstrip_newlines(content));
      else
        w.turn(int(i), "assistant", "", content);
    } else {  // tool
      bool opens = i == 0 || m[i - 1].role != "tool";
      bool closes = i + 1 == m.size() || m[i + 1].role != "tool";
      w.tool(int(i), opens, closes, msg.content);
    }
  }
  if (opt.add_generation_prompt)
    w.generation_prompt(opt.enable_thinking.has_value() && !*opt.enable_thinking ? "<think>\n\n</think>\n\n" : "");
}

}  // namespace

ChatFamily parse_chat_family(const std::string& name) {
  if (name == "qwen2") return ChatFamily::qwen2;
  if (name == "qwen2.5" || name == "qwen2_5") return ChatFamily::qwen2_5;
  if (name == "qwen3") return ChatFamily::qwen3;
  FAIL_WITH("unknown chat template '", name, "'; known: qwen2, qwen2.5, qwen3");
}

const char* chat_family_name(ChatFamily f) {
  switch (f) {
    case ChatFamily::qwen2: return "qwen2";
    case ChatFamily::qwen2_5: return "qwen2.5";
    case ChatFamily::qwen3: return "qwen3";
  }
  return "?";
}

RenderedChat render_chat(ChatFamily family, const std::vector<ChatMessage>& messages, const ChatOptions& opt) {
  check_roles(messages, family);
  Writer w;
  // Qwen3's template renders a leading system message before its loop and skips it inside; the
  // output is the same as rendering it in order, which render_qwen3 does.
  if (family == ChatFamily::qwen3) render_qwen3(w, messages, opt);
  else render_qwen2_family(w, messages, family, opt);
  return std::move(w.out);
}

EncodedChat encode_chat(const Tokenizer& tokenizer, ChatFamily family, const std::vector<ChatMessage>& messages,
                        const ChatOptions& opt) {
  std::vector<ChatMessage> normalized = messages;
  if (tokenizer.uses_nfc())
    for (auto& m : normalized) m.content = tokenizer.normalize(m.content);
  RenderedChat r = render_chat(family, normalized, opt);
  EncodedChat e;
  std::vector<size_t> offsets;
  e.ids = tokenizer.encode_with_offsets(r.text, offsets);
  e.text = std::move(r.text);
  // Token k covers bytes [offsets[k], offsets[k+1]).
  auto first_token_ending_after = [&](size_t byte) {
    int32_t k = 0;
    while (size_t(k) < e.ids.size() && (size_t(k) + 1 < offsets.size() ? offsets[size_t(k) + 1] : e.text.size()) <= byte)
      ++k;
    return k;
  };
  auto first_token_starting_at_or_after = [&](size_t byte) {
    int32_t k = 0;
    while (size_t(k) < e.ids.size() && offsets[size_t(k)] < byte) ++k;
    return k;
  };
  e.assistant_mask.assign(e.ids.size(), 0);
  for (const ChatTurn& t : r.turns) {
    ChatTokenTurn tt{t.message, t.role, first_token_ending_after(t.begin), first_token_ending_after(t.body_begin),
                     first_token_starting_at_or_after(t.body_end), first_token_starting_at_or_after(t.end)};
    if (t.body_begin == t.body_end) tt.body_begin = tt.body_end = first_token_starting_at_or_after(t.body_end);
    if (t.role == "assistant")
      for (int32_t k = tt.body_begin; k < tt.body_end; ++k) e.assistant_mask[size_t(k)] = 1;
    e.turns.push_back(tt);
  }
  return e;
}

std::optional<ChatFamily> chat_family_for_tokenizer(const std::string& name_or_path) {
  if (name_or_path == "qwen3") return ChatFamily::qwen3;
  if (name_or_path == "qwen2.5") return ChatFamily::qwen2_5;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::is_directory(name_or_path, ec) ? fs::path(name_or_path) : fs::path(name_or_path).parent_path();
  fs::path config = dir / "tokenizer_config.json";
  if (!fs::exists(config, ec)) return std::nullopt;
  std::ifstream f(config);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  // Folders attnlab writes record the family itself (data/tokenizer_files.h).
  if (j.is_object() && j.contains("attnlab_chat_family") && j["attnlab_chat_family"].is_string())
    return parse_chat_family(j["attnlab_chat_family"].get<std::string>());
  if (!j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string()) return std::nullopt;
  const std::string tmpl = j["chat_template"].get<std::string>();
  if (tmpl.find("<|im_start|>") == std::string::npos) return std::nullopt;
  if (tmpl.find("<think>") != std::string::npos) return ChatFamily::qwen3;
  if (tmpl.find(kQwen25System) != std::string::npos) return ChatFamily::qwen2_5;
  if (tmpl.find(kQwen2System) != std::string::npos) return ChatFamily::qwen2;
  return std::nullopt;
}

}  // namespace attnlab::data
