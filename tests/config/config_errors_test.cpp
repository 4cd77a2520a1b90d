// Experiment config errors: every class of problem with its message and its exact
// FILE:LINE:COLUMN (found by searching the test YAML, not from yaml-cpp), all problems of a
// file reported in one pass, and every cross-field rule.
#include <sys/wait.h>

#include <algorithm>
#include <functional>

#include "config/config_test_util.h"
#include "core/config/rules.h"

namespace attnlab::test {

using namespace attnlab::config;

namespace {

// One problem expected: at `needle` in the YAML (or at `where` when given), containing `fragment`.
void expect_single(const std::string& yaml, const std::string& needle, const std::string& fragment,
                   const std::vector<std::string>& overrides = {}) {
  TempYaml y(yaml);
  auto p = problems_of(y.path(), overrides);
  ASSERT_EQ(p.size(), 1u) << yaml << dump(p);
  EXPECT_EQ(p[0].where, y.at(needle)) << p[0].text();
  EXPECT_NE(p[0].message.find(fragment), std::string::npos) << p[0].text();
}

// The minimal pretrain config with extra lines appended to its sections.
struct Parts {
  std::string task = "pretrain";
  std::string run;     // lines under run: after name
  std::string model = "  from: init:gpt2\n";
  std::string data;    // lines under data: after path
  std::string train = "  steps: 100\n";
  std::string extra;   // whole extra sections
  std::string text() const {
    return "task: " + task + "\nrun:\n  name: tiny\n" + run + "model:\n" + model + "data:\n  path: corpus.txt\n" + data +
           "train:\n" + train + extra;
  }
};

}  // namespace

TEST(ConfigErrors, PositionsAreOneBasedLineAndColumn) {
  // Positions written out by hand for this text, to check the search helper itself.
  TempYaml y("task: pretrain\nrun:\n  name: tiny\noptim:\n  lr: fast\n");
  EXPECT_EQ(y.at("fast"), y.path() + ":5:7");
  auto p = problems_of(y.path());
  EXPECT_TRUE(has_problem(p, y.path() + ":5:7", "optim.lr: expected float, got 'fast'")) << dump(p);
}

TEST(ConfigErrors, UnknownKeysSuggestTheNearestPath) {
  Parts typo;
  typo.extra = "optim:\n  lrr: 0.1\n";
  expect_single(typo.text(), "lrr", "unknown key 'lrr' in optim; did you mean 'optim.lr'?");
  Parts top;
  top.extra = "lr: 0.1\n";
  expect_single(top.text(), "lr: 0.1", "unknown top-level key 'lr'; did you mean 'optim.lr'?");
  Parts nested;
  nested.train += "  ramp_alpha: 0.5\n";
  expect_single(nested.text(), "ramp_alpha", "did you mean 'model.attention.ramp_alpha'?");
  Parts section;
  section.extra = "optm:\n  lr: 0.1\n";
  expect_single(section.text(), "optm", "unknown top-level key 'optm'; did you mean 'optim'?");
  Parts shared;
  shared.extra = "every_steps: 5\n";
  expect_single(shared.text(), "every_steps",
                "did you mean one of 'eval.every_steps', 'checkpoint.every_steps', 'log.every_steps'?");
  Parts dotted;
  dotted.extra = "optim.lr: 0.1\n";
  expect_single(dotted.text(), "optim.lr", "in YAML, nest it: optim: {lr: ...}");
  Parts hopeless;
  hopeless.extra = "optim:\n  xyzzy: 1\n";
  expect_single(hopeless.text(), "xyzzy", "optim's keys are name, lr, weight_decay");
}

TEST(ConfigErrors, WrongTypesNameTheExpectedType) {
  Parts word;
  word.extra = "optim:\n  lr: fast\n";
  expect_single(word.text(), "fast", "optim.lr: expected float, got 'fast'");
  Parts fraction;
  fraction.train = "  steps: 1.5\n";
  expect_single(fraction.text(), "1.5", "train.steps: expected int, got '1.5'");
  Parts yes;
  yes.extra = "log:\n  progress: yes\n";
  expect_single(yes.text(), "yes", "log.progress: expected bool (true or false), got 'yes'");
  Parts scalar_for_list;
  scalar_for_list.extra = "optim:\n  betas: 0.9\n";
  expect_single(scalar_for_list.text(), "0.9", "optim.betas: expected a list of float like [1, 2], got a scalar");
  Parts list_for_scalar;
  list_for_scalar.extra = "optim:\n  lr: [1]\n";
  expect_single(list_for_scalar.text(), "[1]", "optim.lr: expected float, got a list");
  Parts element;
  element.extra = "profile:\n  steps: [1, x]\n";
  expect_single(element.text(), "x]", "profile.steps: element 1: expected int, got 'x'");
  Parts section_scalar;
  section_scalar.extra = "schedule: cosine\n";
  expect_single(section_scalar.text(), "cosine", "schedule is a section; expected a mapping of its keys");
  Parts map_scalar;
  map_scalar.model += "  arch: 4\n";
  expect_single(map_scalar.text(), "4\n", "model.arch: expected a mapping of names to scalars, got a scalar");
  Parts null_value;
  null_value.extra = "optim:\n  lr:\n";
  expect_single(null_value.text(), "lr:", "optim.lr: no value given; expected float");
}

TEST(ConfigErrors, OutOfRangeValuesShowTheRange) {
  Parts lr;
  lr.extra = "optim:\n  lr: 20\n";
  expect_single(lr.text(), "20", "optim.lr: 20.0 is out of range (0, 10]");
  Parts seq;
  seq.data = "  seq_len: 1\n";
  expect_single(seq.text(), "1\n", "data.seq_len: 1 is out of range [2, 1048576]");
  Parts beta;
  beta.extra = "optim:\n  betas: [0.9, 1.5]\n";
  expect_single(beta.text(), "1.5", "optim.betas: element 1: 1.5 is out of range [0, 1)");
  Parts negative;
  negative.run = "  seed: -3\n";
  expect_single(negative.text(), "-3", "run.seed: -3 is out of range >= 0");
  Parts length;
  length.extra = "optim:\n  betas: [0.9]\n";
  expect_single(length.text(), "[0.9]", "optim.betas: expected a list of exactly 2 values, got 1");
  Parts empty;
  empty.run = "  out_dir: \"\"\n";
  expect_single(empty.text(), "\"\"", "run.out_dir: expected a non-empty path");
}

TEST(ConfigErrors, BadEnumValuesListTheChoices) {
  Parts kind;
  kind.extra = "schedule:\n  kind: cosin\n";
  expect_single(kind.text(), "cosin", "schedule.kind: 'cosin' is not one of: cosine, linear, constant; did you mean 'cosine'?");
  Parts task;
  task.task = "finetune";
  expect_single(task.text(), "finetune", "task: 'finetune' is not one of: pretrain, sft, kv_only");
}

TEST(ConfigErrors, FieldChecksRejectBadStrings) {
  Parts arch;
  arch.model = "  from: init:gtp2\n";
  expect_single(arch.text(), "init:gtp2", "did you mean 'init:gpt2'?");
  Parts name;
  name.run = "";
  std::string text = name.text();
  text.replace(text.find("name: tiny"), 10, "name: a/b");
  expect_single(text, "a/b", "run.name: a run name may hold only letters, digits and . _ -");
}

TEST(ConfigErrors, MissingRequiredKeysPointAtTheirSection) {
  // model: is present without from: the problem points at the section key.
  Parts no_from;
  no_from.model = "  attention:\n    norm: softmax\n";
  expect_single(no_from.text(), "model:", "missing required key 'model.from'");
  // No run section at all: the top of the file.
  TempYaml y("task: pretrain\nmodel:\n  from: init:gpt2\ndata:\n  path: c.txt\ntrain:\n  steps: 5\n");
  auto p = problems_of(y.path());
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, y.path() + ":1:1");
  EXPECT_NE(p[0].message.find("missing required key 'run.name'"), std::string::npos);
  // A required key may come from the command line instead.
  EXPECT_NO_THROW(load_experiment(y.path(), {"run.name=cli"}));
}

TEST(ConfigErrors, DuplicateKeysAreReported) {
  Parts dup;
  dup.extra = "optim:\n  lr: 0.1\n  lr: 0.2\n";
  expect_single(dup.text(), "lr: 0.2", "duplicate key 'optim.lr' (first at line 11)");
  Parts section;
  section.extra = "run:\n  seed: 3\n";
  expect_single(section.text(), "run:\n  seed", "duplicate key 'run' (first at line 2)");
}

TEST(ConfigErrors, DocumentProblemsHavePositions) {
  TempYaml syntax("task: pretrain\nrun:\n  name: tiny\n   seed: 2\n");
  auto p = problems_of(syntax.path());
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, syntax.at(": 2"));  // yaml-cpp stops at the stray mapping colon
  EXPECT_NE(p[0].message.find("YAML syntax error"), std::string::npos);

  TempYaml unclosed("task: [pretrain\nrun:\n  name: x\n");
  p = problems_of(unclosed.path());
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where.substr(0, unclosed.path().size() + 1), unclosed.path() + ":");
  EXPECT_NE(p[0].message.find("YAML syntax error: end of sequence flow not found"), std::string::npos);

  TempYaml empty("# nothing but a comment\n");
  p = problems_of(empty.path());
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, empty.path() + ":1:1");
  EXPECT_NE(p[0].message.find("holds no config"), std::string::npos);

  TempYaml list("- task\n- run\n");
  p = problems_of(list.path());
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, list.at("- task"));
  EXPECT_NE(p[0].message.find("got a list"), std::string::npos);

  TempYaml two(Parts().text() + "---\nseed: 1\n");
  p = problems_of(two.path());
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, two.at("seed: 1"));
  EXPECT_NE(p[0].message.find("one YAML document"), std::string::npos);

  try {
    load_experiment("/nonexistent/attnlab.yaml");
    ADD_FAILURE() << "a missing file loaded";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0].where, "/nonexistent/attnlab.yaml");
    EXPECT_NE(e.problems()[0].message.find("cannot read"), std::string::npos);
  }
}

TEST(ConfigErrors, AllProblemsAreReportedInOnePass) {
  const std::string text =
      "task: sft\n"                // 1  rule: sft needs sft_format (blamed on task)
      "lr: 0.1\n"                  // 2  misplaced key
      "run:\n"                     // 3
      "  name: tiny\n"             // 4
      "  device: gpu\n"            // 5  bad enum
      "model:\n"                   // 6
      "  from: init:gpt2\n"        // 7
      "data:\n"                    // 8
      "  path: c.jsonl\n"          // 9
      "  seq_len: lots\n"          // 10 wrong type
      "train:\n"                   // 11
      "  steps: 10\n"              // 12
      "  epochs: 2\n"              // 13 rule: steps and epochs
      "optim:\n"                   // 14
      "  lrr: 0.1\n"               // 15 unknown key
      "  betas: [0.9, 2]\n";       // 16 out of range
  TempYaml y(text);
  try {
    load_experiment(y.path(), {"optim.eps=tiny"});
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    const auto& p = e.problems();
    EXPECT_TRUE(has_problem(p, y.path() + ":2:1", "did you mean 'optim.lr'?")) << dump(p);
    EXPECT_TRUE(has_problem(p, y.path() + ":5:11", "run.device: 'gpu' is not one of: auto, cpu, cuda")) << dump(p);
    EXPECT_TRUE(has_problem(p, y.path() + ":10:12", "data.seq_len: expected int, got 'lots'")) << dump(p);
    EXPECT_TRUE(has_problem(p, y.path() + ":15:3", "unknown key 'lrr' in optim; did you mean 'optim.lr'?")) << dump(p);
    EXPECT_TRUE(has_problem(p, y.path() + ":16:16", "element 1: 2.0 is out of range [0, 1)")) << dump(p);
    EXPECT_TRUE(has_problem(p, "command line: optim.eps=tiny", "expected float, got 'tiny'")) << dump(p);
    EXPECT_TRUE(has_problem(p, y.path() + ":13:3", "train.steps and train.epochs are both set")) << dump(p);
    EXPECT_TRUE(has_problem(p, y.path() + ":1:1", "task sft needs data.sft_format")) << dump(p);
    EXPECT_EQ(p.size(), 8u) << dump(p);
    // what() is the same problems, one per line.
    std::string what = e.what();
    EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 7);
    EXPECT_EQ(what.substr(0, what.find('\n')), p[0].text());
  }
}

// One case per cross-field rule: the Parts edit that breaks it, where the problem points,
// and a fragment of its message.
struct RuleCase {
  const char* name;
  std::function<void(Parts&)> edit;
  const char* needle;
  const char* fragment;
};

TEST(ConfigErrors, EveryCrossFieldRuleReportsItsConflict) {
  const std::vector<RuleCase> cases = {
      {"steps+epochs", [](Parts& p) { p.train += "  epochs: 2\n"; }, "epochs", "train.steps and train.epochs are both set"},
      {"no length", [](Parts& p) { p.train = "  micro_batch: 2\n"; }, "train:", "set train.steps or train.epochs"},
      {"profile order", [](Parts& p) { p.extra = "profile:\n  steps: [9, 3]\n"; }, "steps: [9",
       "profile.steps: start (9) must be less than end (3)"},
      {"profile end", [](Parts& p) { p.extra = "profile:\n  steps: [10, 200]\n"; }, "steps: [10",
       "profile.steps ends at step 200, after the last step (train.steps: 100)"},
      {"kv_only trainable",
       [](Parts& p) { p.task = "kv_only"; p.model = "  from: /models/qwen\n"; p.train += "  trainable: [\"*\"]\n"; },
       "trainable", "task kv_only trains only the k_proj/v_proj weights"},
      {"kv_only init", [](Parts& p) { p.task = "kv_only"; }, "from:", "task kv_only fine-tunes pretrained weights"},
      {"sft format", [](Parts& p) { p.task = "sft"; }, "task", "task sft needs data.sft_format"},
      {"pretrain format", [](Parts& p) { p.data = "  format: jsonl\n  sft_format: gsm8k\n"; }, "sft_format",
       "data.sft_format is set but task pretrain"},
      {"fields", [](Parts& p) { p.data = "  fields: {question: q}\n"; }, "fields", "data.fields renames SFT record fields"},
      {"sft file format", [](Parts& p) { p.task = "sft"; p.data = "  format: tsv\n  sft_format: gsm8k\n"; }, "format: tsv",
       "data.sft_format gsm8k reads jsonl records, but data.format is tsv"},
      {"loss_on", [](Parts& p) { p.data = "  loss_on: assistant\n"; }, "loss_on", "data.loss_on: assistant masks"},
      {"ramp_alpha", [](Parts& p) { p.model += "  attention:\n    ramp_alpha: 0.3\n"; }, "ramp_alpha",
       "model.attention.ramp_alpha is set but model.attention.norm is softmax"},
      {"ramp", [](Parts& p) { p.model += "  attention:\n    norm: ramp\n"; }, "norm: ramp",
       "model.attention.norm: ramp needs model.attention.ramp_alpha"},
      {"warmup", [](Parts& p) { p.extra = "schedule:\n  warmup_steps: 100\n"; }, "warmup_steps",
       "schedule.warmup_steps (100) must be less than train.steps (100)"},
      {"tokens", [](Parts& p) { p.train += "  micro_batch: 65536\n  grad_accum: 64\n"; }, "micro_batch",
       "= 4294967296 tokens per optimizer step"},
      {"bf16 cpu", [](Parts& p) { p.run = "  device: cpu\n  dtype: bf16\n"; }, "dtype", "run.dtype bf16 runs on cuda only"},
      {"nccl cpu", [](Parts& p) { p.run = "  device: cpu\n"; p.extra = "distributed:\n  backend: nccl\n"; }, "backend",
       "distributed.backend nccl needs GPUs"},
      {"zero1", [](Parts& p) { p.extra = "distributed:\n  zero1: true\n  backend: none\n"; }, "zero1",
       "distributed.zero1 shards optimizer state"},
      {"eval split", [](Parts& p) { p.data = "  val_fraction: 0\n"; p.extra = "eval:\n  every_steps: 10\n"; },
       "every_steps", "there is no validation split"},
      {"eval steps+epochs", [](Parts& p) { p.extra = "eval:\n  every_steps: 10\n  every_epochs: 1\n"; }, "every_epochs",
       "eval.every_steps and eval.every_epochs are both set"},
      {"best metric", [](Parts& p) { p.extra = "eval:\n  best_metric: val_loss\n"; }, "best_metric",
       "eval.best_metric is val_loss but eval.every_steps is 0"},
      {"sgd betas", [](Parts& p) { p.extra = "optim:\n  name: sgd\n  betas: [0.9, 0.99]\n"; }, "betas",
       "optim.betas is an AdamW setting, but optim.name is sgd"},
  };
  EXPECT_EQ(cases.size(), cross_field_rules().size()) << "a rule without a test case (or a case without a rule)";
  for (const RuleCase& c : cases) {
    SCOPED_TRACE(c.name);
    Parts p;
    c.edit(p);
    expect_single(p.text(), c.needle, c.fragment);
  }
  // The unedited parts are valid: every failure above comes from its edit.
  EXPECT_NO_THROW(load_experiment_text(Parts().text(), "parts.yaml"));
}

TEST(ConfigErrors, RulesSkipFieldsThatAlreadyFailed) {
  // ramp_alpha is out of range: its own problem is reported, not also the ramp rule's.
  Parts p;
  p.model += "  attention:\n    ramp_alpha: 3\n";
  expect_single(p.text(), "3\n", "model.attention.ramp_alpha: 3.0 is out of range [0, 1]");
}

TEST(ConfigErrors, ValidateCommandExitsTwoOnProblems) {
  const std::string bin = std::string(ATTNLAB_BINARY_DIR) + "/attnlab";
  if (access(bin.c_str(), X_OK) != 0) GTEST_SKIP() << "the attnlab binary is not built at " << bin;
  TempYaml good(Parts().text());
  TempYaml bad(Parts().text() + "optim:\n  lr: fast\n");
  auto status = [&](const std::string& args) {
    int s = std::system((bin + " " + args + " >/dev/null 2>&1").c_str());
    return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  };
  EXPECT_EQ(status("validate --quiet " + good.path()), 0);
  EXPECT_EQ(status("validate " + good.path() + " optim.lr=1e-4"), 0);
  EXPECT_EQ(status("validate " + bad.path()), 2);
  EXPECT_EQ(status("validate " + good.path() + " optim.lr=abc"), 2);
  EXPECT_EQ(status("config fields --section optim"), 0);
}

}  // namespace attnlab::test
