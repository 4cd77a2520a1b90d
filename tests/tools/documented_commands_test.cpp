// Every command the documentation shows a user runs as written: the README's ```bash blocks, the
// experiment files' header comments and the --help examples of every (sub)command
// (tests/tools/documented_commands.h gathers them). Commands run in order, in a scratch folder
// laid out like the source tree (experiments/, tools/, build/attnlab; attnlab on the PATH), so
// later commands see what earlier ones wrote, as they would for the user.
//
// What the test may change, from one table keyed by the command (kQuick):
//   extra   arguments appended to make a training command a few steps long with a one-batch
//           evaluation (key=value replaces the command's own key=) or a benchmark cheaper; nothing
//           else about the command;
//   before  shell lines that make the inputs an example names (`--model ./gpt2`, `ids.txt`);
//   skip    why a command cannot run in a test (it builds the project, needs Slurm or a GPU).
// Beyond the table, /tmp/ in a command is the scratch folder's tmp/ and mpirun gets
// --oversubscribe (and --allow-run-as-root as root, as the README says).
// A table entry that matches no documented command fails the test, so the table cannot go stale.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/ctx.h"
#include "data/data_test_util.h"
#include "support/subprocess.h"
#include "support/testing.h"
#include "tools/documented_commands.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;
using doc::DocCommand;

std::string binary_dir() { return ATTNLAB_BINARY_DIR; }
std::string binary() { return binary_dir() + "/attnlab"; }
std::string source(const std::string& rel) { return std::string(ATTNLAB_SOURCE_DIR) + "/" + rel; }

struct Quick {
  std::string extra;
  std::string before;
  std::string skip;
  bool needs_gpu = false;
};

// A few steps of a training command; the study files also shrink the per-step work (batch,
// sequence, the end-of-run needle analysis) since one of their full steps is minutes on a CPU.
// Every run over the SOTU text with the GPT-2 tokenizer shares one shard folder: the text is
// tokenised once (shards are reused by corpus and tokenizer hash), not once per run folder.
#define SOTU_SHARDS "data.shard_dir=runs/sotu-gpt2-shards"
// One evaluation batch: the end-of-run evaluation of the files' 4-10 batches dominated these runs.
const char* kFewSteps = "train.steps=2 eval.batches=1 " SOTU_SHARDS;
const char* kStudyQuick =
    "train.epochs=null train.steps=2 train.micro_batch=2 data.seq_len=64 eval.batches=1 analysis.samples=2 "
    "analysis.context_length=64 " SOTU_SHARDS;
const char* kStudyNeedleQuick = "--samples 2 --context-length 64";
const char* kNeedsGpu = "needs a CUDA GPU";
// The stand-in inputs of experiments/icl/*.yaml (their header commands make the same files).
#define ICL_MODEL "[ -f runs/inputs/qwen3-tiny/config.json ] || attnlab init --arch qwen3 --tiny --out runs/inputs/qwen3-tiny\n"
const char* kIclSst2Inputs = ICL_MODEL
    "[ -f runs/inputs/icl/sst2-train.tsv ] || attnlab data synth sst2 --n 64 --seed 1 --out runs/inputs/icl/sst2-train.tsv\n"
    "[ -f runs/inputs/icl/sst2-validation.tsv ] || attnlab data synth sst2 --n 16 --seed 2 --out runs/inputs/icl/sst2-validation.tsv";
const char* kIclSst5Inputs = ICL_MODEL
    "[ -f runs/inputs/icl/sst5-train.jsonl ] || attnlab data synth sst5 --n 64 --seed 1 --out runs/inputs/icl/sst5-train.jsonl\n"
    "[ -f runs/inputs/icl/sst5-validation.jsonl ] || attnlab data synth sst5 --n 16 --seed 2 --out runs/inputs/icl/sst5-validation.jsonl";
// GPT-2 124M in f32 on CI's two cores: one step is minutes, more than the whole test may take. The
// file itself is checked by `attnlab validate` (DocumentedCommands.ExperimentFilesValidate below).
const char* kGpt2OnCpu = "trains GPT-2 124M on the CPU (minutes per step on 2 cores); its file is validated instead";

// The backward-head study's runs: two optimizer steps of 4 records (one step of the stand-in is seconds).
// The same settings as the files' header commands, so that running those after the README's resumes
// the finished runs instead of refusing a changed config.
const char* kBackwardHeadQuick = "train.epochs=null train.steps=2 train.grad_accum=1 schedule.warmup_steps=1";
const char* kBackwardHeadReal = "needs the gpt2 weights, OpenMathInstruct-2 and a GPU (the real run)";

// Keyed by the command as written, blanks squeezed and build/attnlab written attnlab.
const std::map<std::string, Quick>& quick_table() {
  static const std::map<std::string, Quick> t = {
      // README
      {"bash tools/quickstart.sh", {"", "", "installs packages, builds and trains for minutes; its parts (assets fetch, "
                                            "info, train experiments/quickstart.yaml) run here one by one"}},
      {"bash tools/test.sh", {"", "", "builds the project and runs every test, this one included"}},
      {"attnlab train experiments/quickstart.yaml", {kFewSteps}},
      {"attnlab train experiments/quickstart.yaml optim.lr=1e-3 train.steps=1000 run.name=try2", {kFewSteps}},
      {"attnlab train experiments/diff-vs-standard/standard.yaml", {kStudyQuick}},
      {"attnlab train experiments/diff-vs-standard/differential.yaml", {kStudyQuick}},
      {"attnlab analyze needle --ckpt runs/diff-vs-standard-standard/checkpoints/best/model.safetensors --ckpt "
       "runs/diff-vs-standard-differential/checkpoints/best/model.safetensors --out runs/diff-vs-standard-needle",
       {kStudyNeedleQuick}},
      {"attnlab launch --nproc 8 -- train experiments/gpt2-124m-sotu.yaml", {"", "", kNeedsGpu, true}},
      {"mpirun -np 4 attnlab train experiments/quickstart.yaml", {kFewSteps}},
      {"sbatch --nodes 2 tools/slurm/train.sbatch experiments/gpt2-124m-sotu.yaml run.name=gpt2-2x8",
       {"", "", "needs a Slurm cluster"}},
      {"attnlab bench matmul 4096 4096 4096", {"--repeats 1"}},
      {"cmake --preset default", {"", "", "builds the project: CI's own job"}},
      {"cmake --build --preset default", {"", "", "builds the project: CI's own job"}},
      {"ctest --preset default", {"", "", "runs every test, this one included"}},
      {"cmake --workflow --preset default", {"", "", "builds and tests the project: CI's own job"}},
      // README: the backward-head study (stand-in runs shortened; the eval reads their checkpoints)
      {"attnlab train experiments/backward-head/standin-gpt2-sotu.yaml",
       {"train.steps=3 schedule.warmup_steps=1 " SOTU_SHARDS}},
      {"attnlab train experiments/backward-head/head.yaml", {kBackwardHeadQuick}},
      {"attnlab train experiments/backward-head/full-ft.yaml", {kBackwardHeadQuick}},
      {"attnlab train experiments/backward-head/lmhead-ft.yaml", {kBackwardHeadQuick}},
      // experiment headers
      {"attnlab train experiments/gpt2-124m-sotu.yaml", {"", "", kGpt2OnCpu}},
      {"attnlab train experiments/gpt2-124m-sotu.yaml train.micro_batch=1 data.seq_len=64 train.steps=4 "
       "schedule.warmup_steps=1 profile.steps=null run.name=gpt2-cpu-smoke",
       {"", "", kGpt2OnCpu}},
      {"attnlab data prepare experiments/quickstart.yaml data.seq_len=512 data.shard_dir=/tmp/shards",
       {"", "[ -d /tmp/shards ] || cp -r runs/sotu-gpt2-shards /tmp/shards  # tokenised above: reused by hash"}},
      {"attnlab train experiments/quickstart.yaml train.steps=2000 run.name=longer", {kFewSteps}},
      {"attnlab train experiments/kv-only-qwen3-sst2.yaml", {"train.epochs=null train.steps=2"}},
      {"attnlab ards run --model ./Qwen2.5-1.5B-Instruct --leramp --greedy --max-new-tokens 256 --device cuda",
       {"", "", "needs the Qwen2.5-1.5B-Instruct weights and a GPU (the real run)", true}},
      {"attnlab ards run --model ./qwen-tiny --tokenizer qwen2.5 --monitor --max-new-tokens 16 --out /tmp/ards",
       {"", "[ -f qwen-tiny/config.json ] || attnlab init --arch qwen2 --tiny --out qwen-tiny --tokenizer none"}},
      {"attnlab ards run --model ./qwen-tiny --tokenizer qwen2.5 --linearize --linear-unmasked --greedy "
       "--max-new-tokens 8 --out /tmp/ards-unmasked",
       {"", "[ -f qwen-tiny/config.json ] || attnlab init --arch qwen2 --tiny --out qwen-tiny --tokenizer none"}},
      {"attnlab train experiments/controllers/info-density-qwen2.5-sotu.yaml", {"train.steps=2 eval.batches=1"}},
      {"attnlab train experiments/controllers/temperature-qwen2.5-sotu.yaml", {"train.steps=2 eval.batches=1"}},
      {"attnlab train experiments/controllers/info-density-qwen2.5-sotu.yaml model.from=/models/Qwen2.5-1.5B-Instruct",
       {"", "", "needs the Qwen2.5-1.5B-Instruct weights (the real run)"}},
      {"attnlab train experiments/controllers/temperature-qwen2.5-sotu.yaml model.from=/models/Qwen2.5-1.5B-Instruct",
       {"", "", "needs the Qwen2.5-1.5B-Instruct weights (the real run)"}},
      {"attnlab train experiments/kv-only-qwen3-sst2.yaml model.from=/models/Qwen3-0.6B-Base "
       "data.path=/data/sst2-demos-seed0.tsv",
       {"", "", "needs the Qwen3-0.6B-Base weights and the SST-2 rows (the real run)"}},
      {"attnlab train experiments/sft-qwen2.5-openr1.yaml", {"train.epochs=null train.steps=2 train.grad_accum=1 eval.batches=1"}},
      {"attnlab train experiments/two-pass/plain-sft.yaml", {"train.epochs=null train.steps=2 train.grad_accum=1 eval.batches=1"}},
      {"attnlab train experiments/two-pass/two-pass-sft.yaml", {"train.epochs=null train.steps=2 train.grad_accum=1 eval.batches=1"}},
      {"attnlab train experiments/two-pass/plain-sft.yaml model.from=/models/Qwen2.5-1.5B-Instruct "
       "data.path=/data/openr1-math-220k.jsonl data.seq_len=2048 run.device=cuda",
       {"", "", "needs the Qwen2.5-1.5B-Instruct weights, OpenR1-Math and a GPU (the real run)", true}},
      {"attnlab train experiments/two-pass/two-pass-sft.yaml model.from=/models/Qwen2.5-1.5B-Instruct "
       "data.path=/data/openr1-math-220k.jsonl data.seq_len=2048 run.device=cuda",
       {"", "", "needs the Qwen2.5-1.5B-Instruct weights, OpenR1-Math and a GPU (the real run)", true}},
      {"attnlab eval gsm8k --data runs/two-pass-standin/gsm8k.jsonl --model "
       "runs/two-pass-standin/two-pass-plain-sft/checkpoints/step_00000008 --name plain --model "
       "runs/two-pass-standin/two-pass-sft/checkpoints/step_00000008 --name two_pass --out runs/two-pass-standin/gsm8k "
       "--limit 20 --max-new-tokens 32 --greedy",
       {"", "", "reads the checkpoints of tools/two_pass_standin.sh, which runs this exact command (minutes)"}},
      {"attnlab chat --model runs/two-pass-standin/two-pass-sft/checkpoints/step_00000008 --prompt 'What is 12 * 7 + "
       "5?' --analyze-gates --max-new-tokens 32 --greedy --out runs/two-pass-standin/chat_gates.json",
       {"", "", "reads the checkpoints of tools/two_pass_standin.sh, which runs this exact command (minutes)"}},
      {"bash tools/two_pass_standin.sh",
       {"", "", "trains two stand-in SFT runs of 8 steps, evaluates and chats (minutes); its SFT commands run here "
                "from the README and the experiment headers, a few steps each"}},
      {"attnlab icl select experiments/icl/sst2.yaml model.from=/models/Qwen3-0.6B-Base --device cuda --train-file "
       "/data/sst2/train.tsv --eval-file /data/sst2/validation.tsv",
       {"", "", "needs the Qwen3-0.6B-Base weights, glue/sst2 and a GPU (the real run)", true}},
      {"attnlab icl run experiments/icl/sst2.yaml model.from=/models/Qwen3-0.6B-Base --device cuda --train-file "
       "/data/sst2/train.tsv --eval-file /data/sst2/validation.tsv --seed 30",
       {"", "", "needs the Qwen3-0.6B-Base weights, glue/sst2 and a GPU (the real run)", true}},
      {"attnlab icl select experiments/icl/sst5.yaml model.from=/models/Qwen3-0.6B-Base --device cuda --train-file "
       "/data/sst5/train.jsonl --eval-file /data/sst5/validation.jsonl",
       {"", "", "needs the Qwen3-0.6B-Base weights, SetFit/sst5 and a GPU (the real run)", true}},
      {"attnlab icl run experiments/icl/sst5.yaml model.from=/models/Qwen3-0.6B-Base --device cuda --train-file "
       "/data/sst5/train.jsonl --eval-file /data/sst5/validation.jsonl --seed 30",
       {"", "", "needs the Qwen3-0.6B-Base weights, SetFit/sst5 and a GPU (the real run)", true}},
      {"attnlab train experiments/sft-qwen2.5-openr1.yaml model.from=/models/Qwen2.5-1.5B-Instruct "
       "data.path=/data/openr1-math-220k.jsonl data.seq_len=2048 run.device=cuda",
       {"", "", "needs the Qwen2.5-1.5B-Instruct weights, OpenR1-Math and a GPU (the real run)", true}},
      {"attnlab train experiments/backward-head/standin-gpt2-sotu.yaml train.steps=3 schedule.warmup_steps=1", {SOTU_SHARDS}},
      {"attnlab train experiments/backward-head/head.yaml model.from=/models/gpt2 data.path=/data/omi2-200k.jsonl "
       "data.seq_len=1024 schedule.warmup_steps=200 run.device=cuda run.dtype=bf16",
       {"", "", kBackwardHeadReal}},
      {"attnlab train experiments/backward-head/full-ft.yaml model.from=/models/gpt2 data.path=/data/omi2-200k.jsonl "
       "data.seq_len=1024 schedule.warmup_steps=200 run.device=cuda run.dtype=bf16",
       {"", "", kBackwardHeadReal}},
      {"attnlab train experiments/backward-head/lmhead-ft.yaml model.from=/models/gpt2 data.path=/data/omi2-200k.jsonl "
       "data.seq_len=1024 schedule.warmup_steps=200 run.device=cuda run.dtype=bf16",
       {"", "", kBackwardHeadReal}},
      // --help examples
      {"attnlab train experiments/quickstart.yaml train.steps=50 optim.lr=1e-3 run.name=try2", {kFewSteps}},
      {"attnlab bench all", {"", "", "every benchmark at its default, GPU-sized shape: tens of minutes on a 2-core CPU (the CPU entries are run one by one by BenchCpu.*)"}},
      {"attnlab analyze needle --ckpt std.safetensors --ckpt diff.safetensors --depths 0,0.25,0.5,0.75",
       {kStudyNeedleQuick,
        "cp runs/diff-vs-standard-standard/checkpoints/best/model.safetensors std.safetensors\n"
        "cp runs/diff-vs-standard-differential/checkpoints/best/model.safetensors diff.safetensors"}},
      {"attnlab generate --model ./gpt2 --prompt 'The meaning of life is' --max-new-tokens 40",
       {"", "attnlab init --arch gpt2 --tiny --out gpt2  # ./gpt2: an HF folder of GPT-2 (tiny, random), tokenizer too\n"
            "cp \"$(attnlab assets path gpt2/encoder.json)\" gpt2/vocab.json\n"
            "cp \"$(attnlab assets path gpt2/vocab.bpe)\" gpt2/merges.txt"}},
      {"attnlab generate --model ./Qwen2.5-0.5B-Instruct --chat --prompt 'What is 7 * 8?' --device cuda",
       {"", "", kNeedsGpu, true}},
      {"attnlab generate --model ./qwen-tiny --tokenizer qwen2.5 --prompt Hi --batch 32 --stats --device cuda",
       {"", "", kNeedsGpu, true}},
      {"attnlab forward --model /tmp/qwen3-tiny --text 'Hello world' --tokenizer qwen3 --dump out.safetensors",
       {"", "[ -d /tmp/qwen3-tiny ] || attnlab init --arch qwen3 --tiny --out /tmp/qwen3-tiny"}},
      {"attnlab forward --model ./gpt2 --tokens ids.txt --dump ref.safetensors --grads --device cuda --dtype bf16",
       {"", "", kNeedsGpu, true}},
      {"attnlab init --arch qwen3 --tiny --out /tmp/qwen3-tiny",
       {"", "rm -rf /tmp/qwen3-tiny  # made earlier for the forward --help example, which names it"}},
      {"attnlab tokenize --tokenizer qwen3 --lines < sentences.txt",
       {"", "printf 'The first sentence.\\nThe second one, longer.\\n' > sentences.txt"}},
      {"attnlab inspect model.safetensors",
       {"", "attnlab init --arch qwen2 --tiny --out tmp/inspect-me && cp tmp/inspect-me/model.safetensors ."}},
      {"attnlab launch --nproc 4 -- train experiments/quickstart.yaml", {"", "", kNeedsGpu, true}},
      // attnlab icl --help examples: the stand-in inputs experiments/icl/*.yaml names (their headers make them too)
      {"attnlab icl select experiments/icl/sst2.yaml --k 4 --seed-max 3 --out /tmp/icl", {"", kIclSst2Inputs}},
      {"attnlab icl finetune-eval experiments/icl/sst2.yaml --k 4 --out /tmp/icl", {"", kIclSst2Inputs}},
      {"attnlab icl simaou experiments/icl/sst2.yaml --k 4 --simaou-source attn_out --out /tmp/icl", {"", kIclSst2Inputs}},
      {"attnlab icl simam experiments/icl/sst2.yaml --k 4 --out /tmp/icl", {"", kIclSst2Inputs}},
      {"attnlab icl kendall experiments/icl/sst2.yaml --k 4 --out /tmp/icl", {"", kIclSst2Inputs}},
      {"attnlab icl run experiments/icl/sst2.yaml --k 4 --out /tmp/icl", {"", kIclSst2Inputs}},
      {"attnlab icl run experiments/icl/sst5.yaml --k 5 --label-scoring --kendall-paper --out /tmp/icl5", {"", kIclSst5Inputs}},
      {"attnlab icl dual-form-check experiments/icl/sst2.yaml --k 4 --layer 1", {"", kIclSst2Inputs}},
      {"srun -N 2 --ntasks-per-node 8 attnlab dist selftest --backend nccl", {"", "", "needs a Slurm cluster with GPUs"}},
      // eval gsm8k / chat (README and --help): the real runs
      {"attnlab eval gsm8k --data gsm8k_test.jsonl --model ./Qwen2.5-1.5B-Instruct --model ./two-pass-sft --name original "
       "--name two_pass --out runs/gsm8k --temperature 0.6 --batch-size 32 --device cuda",
       {"", "", "needs GSM8K, the Qwen2.5-1.5B-Instruct weights, a trained two-pass checkpoint and a GPU (the real run)",
        true}},
      {"attnlab chat --model ./two-pass-sft --analyze-gates --temperature 0.7 --top-p 0.9 --device cuda",
       {"", "", "needs a trained two-pass checkpoint and a GPU; interactive (the real run)", true}},
  };
  return t;
}

std::string key_of(const std::string& text) {
  std::string k = doc::squeeze_blanks(text);
  for (size_t at; (at = k.find("build/attnlab")) != std::string::npos;) k.replace(at, 13, "attnlab");
  return k;
}

// `cmd` with `extra` appended; an extra key=value replaces the command's own key=.
// A shortened training run also shortens its warmup and profiling window (validate refuses a run
// shorter than either); the extra overrides may still set them.
const char* kShortRun = "schedule.warmup_steps=0 profile.steps=null ";

// The table's extra overrides, plus kShortRun for a training run the table shortens.
std::string short_run_extra(const std::string& cmd, const std::string& extra) {
  const bool trains = cmd.find(" train ") != std::string::npos && extra.find("train.steps=") != std::string::npos;
  return trains ? kShortRun + extra : extra;
}

std::string with_extra(const std::string& cmd, const std::string& extra) {
  if (extra.empty()) return cmd;
  std::vector<std::string> words;
  std::istringstream in(cmd);
  for (std::string w; in >> w;) words.push_back(w);
  std::istringstream ex(extra);
  for (std::string e; ex >> e;) {
    const size_t eq = e.find('=');
    if (eq != std::string::npos && e[0] != '-')
      std::erase_if(words, [&](const std::string& w) { return w.compare(0, eq + 1, e, 0, eq + 1) == 0; });
    words.push_back(e);
  }
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

std::string run_help(const std::string& args) {
  std::string out;
  run_command(binary() + " " + args + " --help", out);
  return out;
}

// README, experiment headers, then every --help (the root, each subcommand, each of theirs).
std::vector<DocCommand> documented_commands() {
  std::vector<DocCommand> all = doc::markdown_commands(read_text(source("README.md")), "README.md");
  std::vector<std::string> yamls;
  for (const auto& e : fs::recursive_directory_iterator(source("experiments")))
    if (e.path().extension() == ".yaml") yamls.push_back(fs::relative(e.path(), source("")).string());
  std::sort(yamls.begin(), yamls.end());
  for (const std::string& y : yamls) {
    const auto v = doc::yaml_header_commands(read_text(source(y)), y);
    all.insert(all.end(), v.begin(), v.end());
  }
  std::vector<std::string> commands{""};
  for (size_t i = 0; i < commands.size() && i < 100; ++i) {
    const std::string help = run_help(commands[i]);
    const auto v = doc::help_example_commands(help, "attnlab " + commands[i] + (commands[i].empty() ? "" : " ") + "--help");
    all.insert(all.end(), v.begin(), v.end());
    if (std::count(commands[i].begin(), commands[i].end(), ' ') >= 1) continue;  // two levels
    for (const std::string& sub : doc::help_subcommands(help))
      commands.push_back(commands[i].empty() ? sub : commands[i] + " " + sub);
  }
  return all;
}

TEST(DocumentedCommands, GathersCommandsFromMarkdownYamlHeadersAndHelp) {
  const auto md = doc::markdown_commands(
      "text\n```bash\nbuild/attnlab train a.yaml   # run it\n# a comment\nattnlab x \\\n    --y 'a # b'\n```\n"
      "```\nnot bash\n```\n",
      "R.md");
  ASSERT_EQ(md.size(), 2u);
  EXPECT_EQ(md[0].text, "build/attnlab train a.yaml");
  EXPECT_EQ(md[0].where, "R.md:3");
  EXPECT_EQ(md[1].text, "attnlab x --y 'a # b'");
  const auto y = doc::yaml_header_commands(
      "# Title, e.g. `attnlab train q.yaml train.steps=5`.\n#\n#   attnlab init --out x   # once\n"
      "#   attnlab train q.yaml a=1 \\\n#       b=2\n# prose attnlab not a command\ntask: x\n#   attnlab after\n",
      "q.yaml");
  ASSERT_EQ(y.size(), 3u);
  EXPECT_EQ(y[0].text, "attnlab train q.yaml train.steps=5");
  EXPECT_EQ(y[1].text, "attnlab init --out x");
  EXPECT_EQ(y[2].text, "attnlab train q.yaml a=1 b=2");
  const auto h = doc::help_example_commands(
      "desc\nExamples: attnlab a --list; attnlab b 1\nOptions:\n  --x\nExamples:\n  attnlab c\n  mpirun -np 2 attnlab d\n"
      "Several machines: prose\n",
      "attnlab z --help");
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].text, "attnlab a --list");
  EXPECT_EQ(h[1].text, "attnlab b 1");
  EXPECT_EQ(h[3].text, "mpirun -np 2 attnlab d");
  // A list continued on the next lines ends with "; ": the separator is not part of the command.
  const auto g = doc::help_example_commands("Examples: attnlab a; attnlab b all;\n  attnlab c\n", "attnlab y --help");
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[1].text, "attnlab b all");
  EXPECT_EQ(doc::help_subcommands("x\nSUBCOMMANDS:\n  info   Versions\n  train  Train\n    wrapped\n\nmore\n"),
            (std::vector<std::string>{"info", "train"}));
  EXPECT_EQ(with_extra("attnlab train a.yaml train.steps=1000 run.name=b", "train.steps=2"),
            "attnlab train a.yaml run.name=b train.steps=2");
}

// The help texts a user without the source tree reads: every command listed, none citing files
// only the developers have.
TEST(DocumentedCommands, HelpListsEveryCommandAndCitesOnlyWhatUsersHave) {
  if (!fs::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  const std::string root = run_help("");
  for (const char* cmd : {"train", "validate", "dist", "launch", "assets", "bench", "analyze", "generate", "init"})
    EXPECT_NE(std::find(doc::help_subcommands(root).begin(), doc::help_subcommands(root).end(), cmd),
              doc::help_subcommands(root).end())
        << cmd << " missing from attnlab --help:\n" << root;
  const std::vector<std::string> dist = doc::help_subcommands(run_help("dist"));
  EXPECT_NE(std::find(dist.begin(), dist.end(), "selftest"), dist.end()) << run_help("dist");
  for (const std::string& cmd : doc::help_subcommands(root)) {
    const std::string help = run_help(cmd);
    EXPECT_EQ(help.find("shared/"), std::string::npos) << "attnlab " << cmd << " --help cites shared/:\n" << help;
    for (const std::string& sub : doc::help_subcommands(help))
      EXPECT_EQ(run_help(cmd + " " + sub).find("shared/"), std::string::npos) << "attnlab " << cmd << " " << sub;
  }
}

// Every experiment file passes `attnlab validate` (schema, rules and the model's buildability), the
// check `attnlab train` runs first: the files whose training is too heavy for this test still load.
TEST(DocumentedCommands, ExperimentFilesValidate) {
  if (!fs::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(source("experiments"))) {
    if (e.path().extension() != ".yaml") continue;
    ++files;
    const ProcessResult r = run_process(binary() + " validate --quiet " + e.path().string(), 60);
    EXPECT_EQ(r.exit_code, 0) << e.path() << ":\n" << r.output;
  }
  EXPECT_GE(files, 8);
}

TEST(DocumentedCommands, EveryDocumentedCommandRunsAsWritten) {
  if (!fs::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  std::string out;
  if (run_command(binary() + " assets verify", out) != 0)
    GTEST_SKIP() << "the asset cache is not fetched (the documented commands read the GPT-2/Qwen tokenizers and the "
                    "SOTU text): run `attnlab assets fetch`\n"
                 << out.substr(0, 500);
  const bool have_mpirun = run_command("command -v mpirun", out) == 0;
  const bool gpu = cuda_status().usable;

  ScratchDir d;
  for (const char* link : {"experiments", "tools"}) fs::create_directory_symlink(source(link), d / link);
  fs::create_directory_symlink(binary_dir(), d / "build");
  fs::create_directories(d / "tmp");
  const std::string mpirun = std::string("mpirun --oversubscribe") + (::getuid() == 0 ? " --allow-run-as-root" : "");

  const std::vector<DocCommand> commands = documented_commands();
  ASSERT_GE(commands.size(), 40u) << "the documentation shows fewer commands than expected: the gatherer broke";
  std::set<std::string> used, done;
  int ran = 0, skipped = 0;
  for (const DocCommand& c : commands) {
    const std::string key = key_of(c.text);
    if (!done.insert(key).second) continue;  // shown in several places (README, header, --help): run once
    const auto q = quick_table().find(key);
    Quick quick;
    if (q != quick_table().end()) {
      quick = q->second;
      used.insert(key);
    }
    std::string why = quick.skip;
    if (quick.needs_gpu && gpu) why.clear();
    if (why.empty() && doc::squeeze_blanks(c.text).rfind("mpirun", 0) == 0 && !have_mpirun) why = "mpirun is not installed";
    if (!why.empty()) {
      std::printf("[ skip ] %s: %s (%s)\n", c.where.c_str(), c.text.c_str(), why.c_str());
      ++skipped;
      continue;
    }
    std::string cmd = with_extra(doc::squeeze_blanks(c.text), short_run_extra(c.text, quick.extra));
    if (cmd.rfind("mpirun ", 0) == 0) cmd = mpirun + cmd.substr(6);
    const std::string script = "set -o pipefail\ncd " + d.path + "\nexport PATH=" + binary_dir() + ":$PATH\n" +
                               replace_all(quick.before, "/tmp/", d.path + "/tmp/") + "\n" +
                               replace_all(cmd, "/tmp/", d.path + "/tmp/") + "\n";
    write_text(d / "step.sh", script);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = run_command("bash " + (d / "step.sh"), out, 600);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ %4.1fs ] %s: %s\n", s, c.where.c_str(), cmd.c_str());
    std::fflush(stdout);
    ++ran;
    EXPECT_EQ(rc, 0) << c.where << ": `" << c.text << "` (run as `" << cmd << "`) exited " << rc << ":\n"
                     << (out.size() > 3000 ? "..." + out.substr(out.size() - 3000) : out);
  }
  for (const auto& [key, _] : quick_table())
    EXPECT_TRUE(used.count(key)) << "the table names a command the documentation no longer shows: " << key;
  std::printf("%d documented commands ran, %d skipped with the reason\n", ran, skipped);
}

}  // namespace
}  // namespace attnlab::test
