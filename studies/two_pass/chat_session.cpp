#include "studies/two_pass/chat_session.h"

#include <algorithm>

#include "core/models/cached_forward.h"
#include "core/models/generate_any.h"
#include "core/models/model.h"
#include "core/probes.h"

namespace attnlab::two_pass {

PromptFormat prompt_format(const std::string& choice, const std::string& tokenizer_source) {
  PromptFormat f;
  if (choice == "none") return f;
  if (choice == "auto" || choice.empty()) {
    f.family = data::chat_family_for_tokenizer(tokenizer_source);
    return f;
  }
  f.family = data::parse_chat_family(choice);
  return f;
}

std::string prompt_format_name(const PromptFormat& f) {
  return f.family ? std::string("chat template ") + data::chat_family_name(*f.family) : "plain transcript (no chat template)";
}

std::string plain_conversation(const std::vector<data::ChatMessage>& messages) {
  std::string out;
  for (const data::ChatMessage& m : messages) {
    if (m.role == "system") out += m.content + "\n\n";
    else if (m.role == "user") out += "User: " + m.content + "\n";
    else if (m.role == "assistant") out += "Assistant: " + m.content + "\n";
    else FAIL_WITH("chat: a message with role '", m.role, "' (plain transcripts take system, user and assistant)");
  }
  return out + "Assistant:";
}

std::string conversation_text(const PromptFormat& f, const std::vector<data::ChatMessage>& messages) {
  if (!f.family) return plain_conversation(messages);
  data::ChatOptions opt;
  opt.add_generation_prompt = true;
  opt.enable_thinking = f.enable_thinking;
  return data::render_chat(*f.family, messages, opt).text;
}

std::vector<int32_t> encode_conversation(const data::Tokenizer& tok, const PromptFormat& f,
                                         const std::vector<data::ChatMessage>& messages) {
  if (!f.family) return tok.encode(plain_conversation(messages));
  data::ChatOptions opt;
  opt.add_generation_prompt = true;
  opt.enable_thinking = f.enable_thinking;
  return data::encode_chat(tok, *f.family, messages, opt).ids;
}

void add_template_stop_tokens(const data::Tokenizer& tok, const PromptFormat& f, std::vector<int32_t>& stops) {
  if (f.family)
    for (const char* s : {"<|im_end|>", "<|endoftext|>"})
      if (auto id = tok.token_id(s)) stops.push_back(*id);
  std::sort(stops.begin(), stops.end());
  stops.erase(std::unique(stops.begin(), stops.end()), stops.end());
}

std::string token_text(const data::Tokenizer& tok, int32_t id) {
  if (id < 0 || id >= tok.vocab_size()) return "<id " + std::to_string(id) + ">";
  const int32_t one[1] = {id};
  return tok.decode(one, /*skip_special=*/false);
}

GenerationResult generate_with_last_step(Model& model, Ctx& ctx, const data::Tokenizer& tok,
                                         const std::vector<int32_t>& prompt, const GenerationConfig& config,
                                         const TokenCallback& on_token) {
  const int64_t P = int64_t(prompt.size());
  const GenerationLength len = plan_generation_length(model.config(), P, config.max_new_tokens);
  int64_t new_tokens = len.max_new_tokens;
  const int64_t limit = model.config().max_position_embeddings;
  if (model.config().arch == ModelArch::gpt2 && limit > 0 && P + new_tokens > limit)
    new_tokens = std::max<int64_t>(1, limit - P);
  GenerationConfig g = config;
  g.max_new_tokens = new_tokens;
  CachedForward forward(model, ctx, 1, P, P + new_tokens);
  GenerationResult r = generate(forward, ctx, {prompt}, g, &tok, on_token);
  r.length_note = len.note;
  const std::vector<int32_t>& ids = r.tokens[0];
  if (!ids.empty()) forward.decode(ctx, {ids.back()});
  return r;
}

ChatTurn run_chat_turn(TrainableModel& model, Ctx& ctx, const data::Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const GenerationConfig& config, bool analyze_gates, const std::string& model_name,
                       const TokenCallback& on_token) {
  ChatTurn turn;
  if (!analyze_gates) {
    turn.generation = generate_any(model, ctx, {prompt}, config, &tok, on_token);
    return turn;
  }
  auto* m = dynamic_cast<Model*>(&model);
  INPUT_CHECK(m != nullptr, "--analyze-gates: the model '", model_name,
              "' is a from-scratch decoder, which has no two-pass gates. Fix: chat with a two_pass model (an HF "
              "folder whose config.json says attnlab.attention.variant: two_pass), or drop --analyze-gates");
  ProbeSink sink;
  ProbeRequest req;
  req.gates = true;
  sink.add(req);
  {
    ProbeScope scope(ctx, &sink);
    turn.generation = generate_with_last_step(*m, ctx, tok, prompt, config, on_token);
  }
  const std::vector<int32_t>& ids = turn.generation.tokens[0];
  std::vector<std::string> texts;
  for (int32_t id : ids) texts.push_back(token_text(tok, id));
  // Call 0 of every layer is the prefill; call i + 1 is generated token i's own step.
  turn.gates = gate_report_from_captures(sink, m->num_layers(), 1, 0, ids, texts, model_name);
  return turn;
}

}  // namespace attnlab::two_pass
