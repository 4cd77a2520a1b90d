// attnlab eval gsm8k --data FILE.jsonl --model DIR [--model DIR ...] --out DIR [--limit N]
// [--batch-size B] [--max-new-tokens N] [--greedy | --temperature T ...] [--seed S]: METHODS §1.7
// (studies/two_pass/gsm8k_eval.h holds the evaluation; this file the options and the console).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/models/generate_any.h"
#include "core/models/model_loader.h"
#include "data/gsm8k.h"
#include "data/tokenizer_files.h"
#include "studies/two_pass/gsm8k_eval.h"
#include "tools/attnlab/cli_options.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/sampling_flags.h"

namespace attnlab::cli {
namespace {

namespace fs = std::filesystem;

struct EvalGsm8kOptions {
  std::string data;
  std::vector<std::string> models;
  std::vector<std::string> names;
  std::string out;
  int64_t limit = 300;
  int64_t batch_size = 8;
  SamplingFlags sampling;
  uint64_t seed = 0;
  ModelRunFlags run;  // --tokenizer, --chat-template, --no-thinking, --attention, --device, --dtype
};

std::vector<std::string> model_names(const EvalGsm8kOptions& o) {
  std::vector<std::string> names;
  std::set<std::string> taken;
  for (size_t i = 0; i < o.models.size(); ++i) {
    std::string base = !o.names.empty() ? o.names[i] : fs::path(o.models[i]).lexically_normal().filename().string();
    if (base.empty() || base == ".") base = fs::absolute(o.models[i]).lexically_normal().parent_path().filename().string();
    base = two_pass::safe_name(base);
    std::string name = base;
    for (int k = 2; taken.count(name); ++k) name = base + "_" + std::to_string(k);
    taken.insert(name);
    names.push_back(name);
  }
  return names;
}

void run_eval_gsm8k(const EvalGsm8kOptions& o) {
  const DeviceDtype dd = parse_device_dtype("eval gsm8k", o.run.device, o.run.dtype, /*allow_auto=*/true);
  o.sampling.check("eval gsm8k");
  ARG_CHECK(o.names.empty() || o.names.size() == o.models.size(), "eval gsm8k: ", o.names.size(), " --name for ",
            o.models.size(), " --model: give one name per model, in the same order, or none");
  const std::vector<data::Gsm8kRecord> records = data::read_gsm8k_jsonl(o.data, o.limit > 0 ? o.limit : -1);
  const std::vector<std::string> names = model_names(o);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  INPUT_CHECK(!ec, "eval gsm8k: cannot create the output folder '", o.out, "': ", ec.message());

  std::printf("GSM8K: %zu records from %s\n", records.size(), o.data.c_str());
  std::vector<two_pass::Gsm8kModelResult> results;
  nlohmann::ordered_json settings;
  settings["batch_size"] = o.batch_size;
  settings["seed"] = o.seed;
  settings["device"] = device_name(dd.device);
  settings["dtype"] = dtype_name(dd.dtype);
  settings["models"] = nlohmann::ordered_json::array();
  for (size_t mi = 0; mi < o.models.size(); ++mi) {
    const std::string& dir = o.models[mi];
    const std::string tokenizer_source = !o.run.tokenizer.empty() ? o.run.tokenizer : dir;
    INPUT_CHECK(!o.run.tokenizer.empty() || data::folder_has_tokenizer(dir), "eval gsm8k: '", dir,
                "' has no tokenizer files (tokenizer.json, or vocab.json + merges.txt); pass --tokenizer "
                "gpt2|qwen2.5|qwen3|PATH");
    const data::Tokenizer tok = data::Tokenizer::load(tokenizer_source);
    two_pass::PromptFormat format = two_pass::prompt_format(o.run.chat_template, tokenizer_source);
    if (o.run.no_thinking) format.enable_thinking = false;

    Ctx ctx = dd.device == Device::cuda ? Ctx::make_cuda(0, o.seed) : Ctx::make_cpu(o.seed);
    auto model = load_any_model(dir, {dd.device, dd.dtype, false}, ctx, o.run.attention);
    GenerationConfig g = o.sampling.resolve(dir, model_eos_tokens(*model), 2048);
    two_pass::add_template_stop_tokens(tok, format, g.stop_tokens);
    const std::vector<std::vector<int32_t>> prompts = two_pass::gsm8k_prompt_ids(tok, format, records);
    for (size_t i = 0; i < prompts.size(); ++i)
      for (int32_t id : prompts[i])
        INPUT_CHECK(id < model->vocab_size(), "eval gsm8k: the tokenizer gave id ", id, " for '", o.data, "' line ",
                    records[i].line, ", outside the vocabulary of ", model->vocab_size(), " of '", dir,
                    "' (is --tokenizer the model's?)");

    std::printf("\n[%s] %s: %s; %s; batch %lld\n", names[mi].c_str(), dir.c_str(),
                two_pass::prompt_format_name(format).c_str(), generation_settings_line(g).c_str(),
                (long long)o.batch_size);
    std::fflush(stdout);
    int64_t printed = 0;
    const int64_t N = int64_t(records.size());
    two_pass::Gsm8kModelResult r = two_pass::evaluate_gsm8k(
        *model, ctx, tok, records, prompts, g, o.batch_size, [&](const two_pass::Gsm8kModelResult& so_far) {
          const int64_t done = int64_t(so_far.rows.size());
          if (done / 5 == printed / 5 && done != N) return;
          printed = done;
          std::printf("  [%lld/%lld] accuracy %.3f (%lld correct), strict #### %.3f, %.1f s\n", (long long)done,
                      (long long)N, so_far.accuracy(), (long long)so_far.correct, so_far.strict_accuracy(),
                      so_far.seconds);
          std::fflush(stdout);
        });
    r.name = names[mi];
    r.path = dir;
    if (!r.length_note.empty()) std::fprintf(stderr, "eval gsm8k: %s: %s\n", dir.c_str(), r.length_note.c_str());
    two_pass::write_gsm8k_model_csv((fs::path(o.out) / ("gsm8k_" + r.name + ".csv")).string(), records, r);
    nlohmann::ordered_json ms = generation_settings_json(g);
    ms["name"] = r.name;
    ms["prompt_format"] = two_pass::prompt_format_name(format);
    settings["models"].push_back(ms);
    results.push_back(std::move(r));
  }

  two_pass::write_gsm8k_results_csv((fs::path(o.out) / "gsm8k_results.csv").string(), records, results);
  const std::string summary_path = (fs::path(o.out) / "summary.json").string();
  std::ofstream s(summary_path);
  s << two_pass::gsm8k_summary_json(o.data, results, settings).dump(2) << "\n";
  INPUT_CHECK(s.good(), "eval gsm8k: cannot write '", summary_path, "'");

  std::printf("\nfinal (%zu records):\n", records.size());
  for (const auto& r : results)
    std::printf("  %-24s accuracy %.4f (%lld/%zu)   strict #### %.4f (%lld/%zu)\n", r.name.c_str(), r.accuracy(),
                (long long)r.correct, r.rows.size(), r.strict_accuracy(), (long long)r.strict_correct, r.rows.size());
  for (size_t i = 1; i < results.size(); ++i)
    std::printf("  %s − %s: %+.4f (strict %+.4f)\n", results[i].name.c_str(), results[0].name.c_str(),
                results[i].accuracy() - results[0].accuracy(),
                results[i].strict_accuracy() - results[0].strict_accuracy());
  std::printf("wrote %s/gsm8k_results.csv, %s/summary.json and one gsm8k_<name>.csv per model\n", o.out.c_str(),
              o.out.c_str());
}

void setup(CLI::App& root) {
  auto o = std::make_shared<EvalGsm8kOptions>();
  auto* c = eval_command(root).add_subcommand(
      "gsm8k", "GSM8K accuracy of one or more models (METHODS §1.7): batched generation, last-number and strict #### rules");
  c->footer(
      "Each record's question goes into the original eval.py's prompt (\"Please solve the following math problem.\n"
      "Your answer must end with the final numerical result in the format: ####<final answer>. ...\") as the user\n"
      "turn of the model's chat template (Qwen2/2.5/3, from the tokenizer; GPT-2 and from-scratch decoders get a\n"
      "plain 'User: ... Assistant:' transcript). Records are generated --batch-size at a time with the KV cache;\n"
      "sampling follows the folder's generation_config.json unless --greedy or --temperature/--top-k/--top-p say\n"
      "otherwise (the original: --temperature 0.6 over Qwen2.5-1.5B-Instruct's settings, 2048 new tokens).\n"
      "Scoring: the LAST number of the response against the last number of the gold answer (|diff| < 0.01; no\n"
      "number counts as wrong), and lm-eval's strict rule: the first '#### N' of the response equals the gold's.\n"
      "Writes into --out: gsm8k_<name>.csv per model, gsm8k_results.csv (every model side by side: question,\n"
      "true_answer, <name>_answer, <name>_correct, ...) and summary.json (accuracies, settings, differences).\n"
      "Models run one after the other, each with the same --seed.\n"
      "Examples:\n"
      "  attnlab data synth gsm8k --n 6 --seed 3 --out /tmp/gsm8k-demo.jsonl\n"
      "  attnlab init --arch qwen2 --tiny --out /tmp/gsm8k-qwen --seed 1 --tokenizer none --force\n"
      "  attnlab init --arch qwen2 --tiny --out /tmp/gsm8k-qwen-b --seed 2 --tokenizer none --force\n"
      "  attnlab eval gsm8k --data /tmp/gsm8k-demo.jsonl --model /tmp/gsm8k-qwen --model /tmp/gsm8k-qwen-b "
      "--name original --name two_pass --tokenizer qwen2.5 --out /tmp/gsm8k-eval --batch-size 3 --max-new-tokens 8 --greedy\n"
      "  attnlab eval gsm8k --data gsm8k_test.jsonl --model ./Qwen2.5-1.5B-Instruct --model ./two-pass-sft "
      "--name original --name two_pass --out runs/gsm8k --temperature 0.6 --batch-size 32 --device cuda");
  c->add_option("--data", o->data, "GSM8K JSONL: one {\"question\", \"answer\"} object per line")->required();
  c->add_option("--model", o->models, "model folder (repeatable: several models in one run, in this order)")
      ->required();
  c->add_option("--name", o->names,
                "name per --model for files and CSV columns (repeatable, same order; default: the folder's name)");
  c->add_option("--out", o->out, "output folder (created)")->required();
  c->add_option("--limit", o->limit, "the first N records (default 300, as the original; 0: all)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_option("--batch-size", o->batch_size, "records generated at once (default 8)")
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  o->sampling.add_to(c, "generation_config.json's max_new_tokens, else 2048");
  c->add_option("--seed", o->seed, "random seed for sampling (default 0)");
  o->run.add_to(c, "each model folder's own");
  c->callback([o] { run_eval_gsm8k(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
