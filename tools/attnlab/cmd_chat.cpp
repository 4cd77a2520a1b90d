// attnlab chat --model DIR [--prompt TEXT] [--system TEXT] [--analyze-gates] [--max-new-tokens N]
// [--greedy | --temperature T --top-k K --top-p P] [--seed S] [--out FILE.json]: a conversation with
// a model (studies/two_pass/chat_session.h) and the gate analysis of METHODS §1.8
// (studies/two_pass/gate_report.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/models/generate_any.h"
#include "core/models/model_loader.h"
#include "data/tokenizer_files.h"
#include "studies/two_pass/chat_session.h"
#include "tools/attnlab/cli_options.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/sampling_flags.h"

namespace attnlab::cli {
namespace {

namespace fs = std::filesystem;

struct ChatOptions {
  std::string model;
  std::optional<std::string> prompt;
  std::string system;
  bool analyze_gates = false;
  SamplingFlags sampling;
  uint64_t seed = 0;
  std::string out;
  ModelRunFlags run;  // --tokenizer, --chat-template, --no-thinking, --attention, --device, --dtype
};

void run_chat(const ChatOptions& o) {
  const DeviceDtype dd = parse_device_dtype("chat", o.run.device, o.run.dtype, /*allow_auto=*/true);
  o.sampling.check("chat");
  ARG_CHECK(!o.prompt || !o.prompt->empty(), "chat: --prompt is empty (leave it out to chat on stdin)");
  const std::string tokenizer_source = !o.run.tokenizer.empty() ? o.run.tokenizer : o.model;
  INPUT_CHECK(!o.run.tokenizer.empty() || data::folder_has_tokenizer(o.model), "chat: '", o.model,
              "' has no tokenizer files (tokenizer.json, or vocab.json + merges.txt); pass --tokenizer "
              "gpt2|qwen2.5|qwen3|PATH");
  const data::Tokenizer tok = data::Tokenizer::load(tokenizer_source);
  two_pass::PromptFormat format = two_pass::prompt_format(o.run.chat_template, tokenizer_source);
  if (o.run.no_thinking) format.enable_thinking = false;

  Ctx ctx = dd.device == Device::cuda ? Ctx::make_cuda(0, o.seed) : Ctx::make_cpu(o.seed);
  auto model = load_any_model(o.model, {dd.device, dd.dtype, false}, ctx, o.run.attention);
  GenerationConfig g = o.sampling.resolve(o.model, model_eos_tokens(*model), 2048);
  two_pass::add_template_stop_tokens(tok, format, g.stop_tokens);

  const bool interactive = !o.prompt;
  const bool tty = interactive && isatty(STDIN_FILENO);
  std::fprintf(stderr, "chat with %s: %s; %s%s\n", o.model.c_str(), two_pass::prompt_format_name(format).c_str(),
               generation_settings_line(g).c_str(), o.analyze_gates ? "; gate analysis on" : "");
  if (interactive)
    std::fprintf(stderr, "one message per line; /reset forgets the conversation, /quit (or end of input) ends it\n");

  std::vector<data::ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  nlohmann::ordered_json turns = nlohmann::ordered_json::array();
  nlohmann::ordered_json last_gates;
  std::string line;
  for (bool first = true;; first = false) {
    std::string user;
    if (!interactive) {
      if (!first) break;
      user = *o.prompt;
    } else {
      if (tty) std::fprintf(stderr, "> "), std::fflush(stderr);
      if (!std::getline(std::cin, line)) break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line == "/quit" || line == "/exit") break;
      if (line == "/reset") {
        messages.resize(o.system.empty() ? 0 : 1);
        std::fprintf(stderr, "(conversation reset)\n");
        continue;
      }
      if (line.empty()) continue;
      user = line;
    }
    messages.push_back({"user", user});
    const std::vector<int32_t> prompt = two_pass::encode_conversation(tok, format, messages);
    for (int32_t id : prompt)
      INPUT_CHECK(id < model->vocab_size(), "chat: the tokenizer gave id ", id, ", outside the vocabulary of ",
                  model->vocab_size(), " of '", o.model, "' (is --tokenizer the model's?)");

    TextStreamer streamer(tok);
    const auto stream = [&](int64_t, int32_t id) {
      if (std::find(g.stop_tokens.begin(), g.stop_tokens.end(), id) != g.stop_tokens.end()) return;
      const std::string piece = streamer.push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    if (interactive) std::printf("assistant: "), std::fflush(stdout);
    const two_pass::ChatTurn turn = two_pass::run_chat_turn(*model, ctx, tok, prompt, g, o.analyze_gates, o.model, stream);
    const std::string rest = streamer.finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
    if (!turn.generation.length_note.empty()) std::fprintf(stderr, "chat: %s\n", turn.generation.length_note.c_str());
    const std::string& reply = turn.generation.texts[0];
    messages.push_back({"assistant", reply});

    nlohmann::ordered_json t;
    t["user"] = user;
    t["response"] = reply;
    if (turn.gates) {
      std::printf("\n%s", two_pass::gate_report_table(*turn.gates).c_str());
      const nlohmann::ordered_json gj = two_pass::gate_report_json(*turn.gates);
      for (const auto& [k, v] : gj.items()) t[k] = v;
      last_gates = gj;
    } else {
      nlohmann::ordered_json toks = nlohmann::ordered_json::array();
      for (int32_t id : turn.generation.tokens[0]) toks.push_back(two_pass::token_text(tok, id));
      t["tokens"] = toks;
      t["ids"] = turn.generation.tokens[0];
    }
    turns.push_back(t);
    std::fflush(stdout);
  }

  if (!o.out.empty()) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["prompt_format"] = two_pass::prompt_format_name(format);
    j["settings"] = generation_settings_json(g);
    // The last turn's fields at the top (the single turn of --prompt), every turn under "turns".
    if (!turns.empty())
      for (const auto& [k, v] : turns.back().items()) j[k] = v;
    j["turns"] = turns;
    const fs::path parent = fs::path(o.out).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    std::ofstream f(o.out);
    f << j.dump(2) << "\n";
    INPUT_CHECK(f.good(), "chat: cannot write '", o.out, "' (is the folder writable?)");
    std::fprintf(stderr, "wrote %s\n", o.out.c_str());
  }
}

void setup(CLI::App& root) {
  auto o = std::make_shared<ChatOptions>();
  auto* c = root.add_subcommand("chat", "Chat with a model (chat template, sampling, stop tokens); --analyze-gates "
                                        "reports two-pass gate magnitudes per generated token");
  c->footer(
      "Without --prompt: reads one user message per line from stdin and answers each in turn, keeping the\n"
      "conversation (/reset forgets it, /quit or end of input ends the chat). With --prompt: one answer, then exit.\n"
      "The conversation goes through the model's chat template (Qwen2/2.5/3, from the tokenizer; --chat-template\n"
      "none or a model without one: a plain 'User: ... Assistant:' transcript). Generation stops at the model's\n"
      "eos tokens and the template's <|im_end|>/<|endoftext|>. Sampling follows the folder's generation_config.json\n"
      "unless --greedy or --temperature/--top-k/--top-p say otherwise (the original: --temperature 0.7 --top-p 0.9).\n"
      "--analyze-gates (a two_pass model): after each answer, per generated token the gate magnitude\n"
      "(‖adj_q‖+‖adj_k‖+‖adj_v‖)/3 of every layer (the token's own decode step), the per-layer means and the\n"
      "token with the largest magnitude (METHODS §1.8). --out writes the answer(s) and the analysis as JSON:\n"
      "tokens, layers, magnitude [token][layer], per_layer_mean, overall_mean, max_token (the last turn at the\n"
      "top, every turn under \"turns\").\n"
      "Examples:\n"
      "  attnlab init --arch qwen2 --tiny --out /tmp/chat-qwen --tokenizer none --force\n"
      "  attnlab chat --model /tmp/chat-qwen --tokenizer qwen2.5 --prompt 'What is 7 * 8?' --max-new-tokens 8 --greedy --out /tmp/chat.json\n"
      "  echo 'Hello' | attnlab chat --model /tmp/chat-qwen --tokenizer qwen2.5 --system 'Be brief.' --max-new-tokens 6 --seed 1\n"
      "  attnlab chat --model ./two-pass-sft --analyze-gates --temperature 0.7 --top-p 0.9 --device cuda");
  c->add_option("--model", o->model, "model folder (HF folder, or a from-scratch decoder's checkpoint folder)")
      ->required();
  c->add_option("--prompt", o->prompt, "one user message: answer it and exit (default: chat on stdin)");
  c->add_option("--system", o->system, "a system message at the start of the conversation");
  c->add_flag("--analyze-gates", o->analyze_gates,
              "report the two-pass gate magnitude per generated token and layer (a two_pass model)");
  o->sampling.add_to(c, "generation_config.json's max_new_tokens, else 2048");
  c->add_option("--seed", o->seed, "random seed for sampling (default 0)");
  c->add_option("--out", o->out, "write the turns (and the gate analysis) to this JSON file");
  o->run.add_to(c, "the model folder's");
  c->callback([o] { run_chat(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
