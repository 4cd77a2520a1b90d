// Chat templates: Qwen3 against its own Jinja template (rendered by @huggingface/jinja, goldens),
// Qwen2/2.5 against the rendering METHODS.md §6.2 specifies, and the assistant-token mask.
#include <gtest/gtest.h>

#include "data/asset_cache.h"
#include "data/chat_template.h"
#include "data/unicode_nfc.h"

namespace attnlab::test {
namespace {
using data::ChatFamily;
using data::ChatMessage;
using data::Tokenizer;

const Tokenizer& qwen(const std::string& name) { return cached_tokenizer(name); }

std::vector<ChatMessage> messages_of(const nlohmann::json& arr) {
  std::vector<ChatMessage> m;
  for (auto& x : arr) m.push_back({x["role"], x["content"]});
  return m;
}

data::ChatOptions options_of(const nlohmann::json& j) {
  data::ChatOptions o;
  o.add_generation_prompt = j.value("add_generation_prompt", false);
  if (j.contains("enable_thinking")) o.enable_thinking = j["enable_thinking"].get<bool>();
  return o;
}

TEST(ChatTemplate, Qwen3RendersLikeItsJinjaTemplate) {
  auto lines = golden_lines("qwen3_chat.txt");
  ASSERT_GE(lines.size(), 8u);
  for (auto& line : lines) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(data::render_chat(ChatFamily::qwen3, messages_of(j["messages"]), options_of(j)).text,
              j["text"].get<std::string>())
        << line;
  }
}

TEST(ChatTemplate, Qwen3TokenIdsMatchTheReference) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  for (auto& line : golden_lines("qwen3_chat.txt")) {
    auto j = nlohmann::json::parse(line);
    data::EncodedChat e = data::encode_chat(qwen("qwen3"), ChatFamily::qwen3, messages_of(j["messages"]), options_of(j));
    EXPECT_EQ(e.ids, j["ids"].get<std::vector<int32_t>>()) << line;
    EXPECT_EQ(e.text, data::to_nfc(j["text"].get<std::string>()));
  }
}

TEST(ChatTemplate, Qwen3AddsNoDefaultSystemPrompt) {
  auto r = data::render_chat(ChatFamily::qwen3, {{"user", "hi"}}, {.add_generation_prompt = true});
  EXPECT_EQ(r.text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

// METHODS.md §6.2: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, a default system
// message when the first is not one, `<|im_start|>assistant\n` as the generation prompt.
std::string chatml(const std::string& role, const std::string& content) {
  return "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
}

TEST(ChatTemplate, Qwen25AndQwen2DefaultSystemPrompts) {
  std::vector<ChatMessage> m = {{"user", "What is 2+2?"}, {"assistant", "4"}};
  std::string body = chatml("user", "What is 2+2?") + chatml("assistant", "4");
  EXPECT_EQ(data::render_chat(ChatFamily::qwen2_5, m).text,
            chatml("system", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") + body);
  EXPECT_EQ(data::render_chat(ChatFamily::qwen2, m).text, chatml("system", "You are a helpful assistant.") + body);
  std::vector<ChatMessage> with_system = {{"system", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(data::render_chat(ChatFamily::qwen2_5, with_system, {.add_generation_prompt = true}).text,
            chatml("system", "Be brief.") + chatml("user", "Hi") + "<|im_start|>assistant\n");
  // Qwen2.5 wraps consecutive tool results into one user turn.
  std::vector<ChatMessage> tools = {{"user", "q"}, {"assistant", "calling"}, {"tool", "r1"}, {"tool", "r2"}};
  EXPECT_EQ(data::render_chat(ChatFamily::qwen2_5, tools).text,
            chatml("system", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") + chatml("user", "q") +
                chatml("assistant", "calling") +
                "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n");
}

std::string decode_masked(const Tokenizer& t, const data::EncodedChat& e) {
  std::vector<int32_t> picked;
  for (size_t k = 0; k < e.ids.size(); ++k)
    if (e.assistant_mask[k]) picked.push_back(e.ids[k]);
  return t.decode(picked);
}

TEST(ChatTemplate, AssistantMaskCoversAssistantContentAndImEnd) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& t = qwen("qwen2.5");
  std::vector<ChatMessage> m = {{"user", "Add 2 and 2."}, {"assistant", "The sum is 4."}, {"user", "Thanks!"},
                                {"assistant", "You're welcome."}};
  data::EncodedChat e = data::encode_chat(t, ChatFamily::qwen2_5, m);
  ASSERT_EQ(e.assistant_mask.size(), e.ids.size());
  EXPECT_EQ(decode_masked(t, e), "The sum is 4.<|im_end|>You're welcome.<|im_end|>");
  // Turns tile the token sequence, in order, with their bodies inside them.
  ASSERT_EQ(e.turns.size(), 5u);  // default system + four messages
  EXPECT_EQ(e.turns[0].message, -1);
  EXPECT_EQ(e.turns[0].begin, 0);
  for (size_t i = 0; i < e.turns.size(); ++i) {
    const auto& tt = e.turns[i];
    EXPECT_LE(tt.begin, tt.body_begin);
    EXPECT_LE(tt.body_begin, tt.body_end);
    EXPECT_LE(tt.body_end, tt.end);
    if (i + 1 < e.turns.size()) EXPECT_EQ(tt.end, e.turns[i + 1].begin);
  }
  EXPECT_EQ(e.turns.back().end, int32_t(e.ids.size()));
  EXPECT_EQ(e.ids[size_t(e.turns[2].begin)], 151644);  // <|im_start|> opens the assistant turn
  EXPECT_EQ(e.ids[size_t(e.turns[2].body_end) - 1], 151645);  // and <|im_end|> closes its body
  EXPECT_EQ(t.decode(std::vector<int32_t>(e.ids.begin() + e.turns[2].begin, e.ids.begin() + e.turns[2].end)),
            chatml("assistant", "The sum is 4."));
}

TEST(ChatTemplate, MaskTakesATokenThatStraddlesTheHeader) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& t = qwen("qwen2.5");
  // "assistant\n" + "\n\nx" puts "\n\n\n" into one token: it holds body bytes, so it is trained.
  data::EncodedChat e = data::encode_chat(t, ChatFamily::qwen2_5, {{"user", "u"}, {"assistant", "\n\nx"}});
  EXPECT_EQ(decode_masked(t, e), "\n\n\nx<|im_end|>");
}

TEST(ChatTemplate, Qwen3MaskIncludesTheThinkBlockOfTheFinalAnswer) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& t = qwen("qwen3");
  std::vector<ChatMessage> m = {{"user", "q1"}, {"assistant", "<think>\nr1\n</think>\n\na1"}, {"user", "q2"},
                                {"assistant", "<think>\nr2\n</think>\n\na2"}};
  data::EncodedChat e = data::encode_chat(t, ChatFamily::qwen3, m);
  // The earlier answer loses its reasoning (as the template does); the last keeps it.
  EXPECT_EQ(decode_masked(t, e), "a1<|im_end|><think>\nr2\n</think>\n\na2<|im_end|>");
}

TEST(ChatTemplate, NonNfcContentKeepsExactOffsets) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const Tokenizer& t = qwen("qwen3");
  data::EncodedChat e = data::encode_chat(t, ChatFamily::qwen3, {{"user", "e\u0301"}, {"assistant", "A\u030a ok"}});
  EXPECT_EQ(decode_masked(t, e), "<think>\n\n</think>\n\n\u00c5 ok<|im_end|>");
}

TEST(ChatTemplate, ErrorsAndFamilies) {
  auto error_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_of([] { data::render_chat(ChatFamily::qwen3, {}); }).find("at least one message"), std::string::npos);
  EXPECT_NE(error_of([] { data::render_chat(ChatFamily::qwen2_5, {{"narrator", "x"}}); }).find("role 'narrator'"),
            std::string::npos);
  EXPECT_NE(error_of([] { data::parse_chat_family("llama"); }).find("qwen2, qwen2.5, qwen3"), std::string::npos);
  EXPECT_EQ(data::parse_chat_family("qwen2.5"), ChatFamily::qwen2_5);
  EXPECT_EQ(data::chat_family_for_tokenizer("qwen3"), ChatFamily::qwen3);
  EXPECT_FALSE(data::chat_family_for_tokenizer("gpt2").has_value());
  if (data::asset_exists("qwen3/tokenizer_config.json"))
    EXPECT_EQ(data::chat_family_for_tokenizer(data::asset_path("qwen3")), ChatFamily::qwen3);
}

}  // namespace
}  // namespace attnlab::test
