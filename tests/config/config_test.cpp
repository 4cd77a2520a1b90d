// Experiment config: typed loading, defaults, overrides, the resolved printout (round trip and
// hash), the field registry and the analysis study schemas. Error reporting is in
// config_errors_test.cpp.
#include <cmath>
#include <set>

#include "config/config_test_util.h"
#include "core/config/printer.h"
#include "core/config/registry.h"
#include "core/config/rules.h"
#include "core/config/suggest.h"
#include "support/testing.h"

namespace attnlab::test {

using namespace attnlab::config;

namespace {

std::string fixture(const std::string& name) { return std::string(ATTNLAB_SOURCE_DIR) + "/tests/config/fixtures/" + name; }

const FieldSpec& spec_of(const std::string& path) {
  for (const FieldSpec& f : core_fields())
    if (f.path == path) return f;
  throw Error("no field " + path);
}

}  // namespace

TEST(Config, ValidFileLoadsTypedValues) {
  ExperimentConfig c = load_experiment(fixture("sft_valid.yaml"));
  EXPECT_EQ(c.task, Task::sft);
  EXPECT_EQ(c.run.name, "two_pass-sft.1");
  EXPECT_EQ(c.run.out_dir, "/tmp/attnlab-runs");
  EXPECT_EQ(c.run.seed, 7);
  EXPECT_EQ(c.run.device, DeviceChoice::cuda);
  EXPECT_EQ(c.run.dtype, DType::bf16);
  EXPECT_TRUE(c.model.random_init());
  EXPECT_EQ(c.model.init_arch(), "qwen2");
  EXPECT_EQ(c.model.arch, (StringMap{{"num_hidden_layers", "2"}, {"hidden_size", "64"}}));
  EXPECT_EQ(c.model.attention.variant, "standard");  // two_pass is refused until a layer implements it
  EXPECT_EQ(c.model.attention.norm, "ramp");
  ASSERT_TRUE(c.model.attention.ramp_alpha.has_value());
  EXPECT_EQ(*c.model.attention.ramp_alpha, 0.25);
  EXPECT_EQ(c.model.attention.controller, "temperature");
  EXPECT_EQ(c.data.format, DataFormat::jsonl);
  EXPECT_EQ(c.data.path, "data/openr1.jsonl");
  EXPECT_EQ(c.data.tokenizer, "qwen2.5");
  EXPECT_TRUE(DataConfig::is_named_tokenizer(c.data.tokenizer));
  EXPECT_EQ(c.data.seq_len, 2048);
  ASSERT_TRUE(c.data.sft_format.has_value());
  EXPECT_EQ(*c.data.sft_format, SftFormat::openr1);
  EXPECT_EQ(c.data.fields, (StringMap{{"problem", "question"}}));
  EXPECT_EQ(c.data.loss_on, LossOn::assistant);
  EXPECT_EQ(c.data.val_fraction, 0.05);
  EXPECT_FALSE(c.train.steps.has_value());
  ASSERT_TRUE(c.train.epochs.has_value());
  EXPECT_EQ(*c.train.epochs, 1);
  EXPECT_EQ(c.train.micro_batch, 1);
  EXPECT_EQ(c.train.grad_accum, 8);
  ASSERT_TRUE(c.train.trainable.has_value());
  EXPECT_EQ(*c.train.trainable, (std::vector<std::string>{"*.gate*", "*.q_proj.*"}));
  EXPECT_EQ(c.optim.lr, 1.0e-5);
  EXPECT_EQ(c.optim.weight_decay, 0.01);
  EXPECT_EQ(c.optim.betas, (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(c.optim.eps, 1e-8);
  EXPECT_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.schedule.kind, ScheduleKind::cosine);
  EXPECT_EQ(c.schedule.warmup_steps, 100);
  EXPECT_EQ(c.schedule.min_lr_ratio, 0.0);
  EXPECT_EQ(c.eval.every_steps, 200);
  EXPECT_EQ(c.eval.batches, 10);
  EXPECT_EQ(c.eval.best_metric, BestMetric::val_loss);
  EXPECT_EQ(c.checkpoint.every_steps, 200);
  EXPECT_EQ(c.checkpoint.keep_last, 3);
  EXPECT_TRUE(c.checkpoint.resume_never());
  EXPECT_EQ(c.distributed.backend, DistBackend::nccl);
  EXPECT_TRUE(c.distributed.zero1);
  EXPECT_EQ(c.distributed.bucket_mb, 32.5);
  EXPECT_EQ(c.log.every_steps, 10);
  EXPECT_FALSE(c.log.progress);
  EXPECT_EQ(c.profile.start(), 5);
  EXPECT_EQ(c.profile.end(), 8);
  EXPECT_TRUE(c.profile.nvtx);
  EXPECT_FALSE(c.analysis.active());
  EXPECT_EQ(c.source, fixture("sft_valid.yaml"));
  // Where each value came from: the file names its key's position, defaults name nothing.
  EXPECT_EQ(c.resolved.at("optim.lr").source, Source::file);
  EXPECT_EQ(c.resolved.at("optim.name").source, Source::default_value);
  EXPECT_TRUE(c.resolved.at("optim.name").where.empty());
}

TEST(Config, DefaultsApplyToAbsentKeys) {
  TempYaml y(minimal_pretrain_yaml());
  ExperimentConfig c = load_experiment(y.path());
  // The typed members hold the declared defaults.
  EXPECT_EQ(c.optim.lr, std::get<double>(spec_of("optim.lr").default_value));
  EXPECT_EQ(c.optim.betas, std::get<std::vector<double>>(spec_of("optim.betas").default_value));
  EXPECT_EQ(c.optim.no_decay, std::get<std::vector<std::string>>(spec_of("optim.no_decay").default_value));
  EXPECT_EQ(c.data.seq_len, std::get<int64_t>(spec_of("data.seq_len").default_value));
  EXPECT_EQ(c.log.progress, std::get<bool>(spec_of("log.progress").default_value));
  EXPECT_EQ(c.run.out_dir, std::get<std::string>(spec_of("run.out_dir").default_value));
  EXPECT_EQ(std::get<std::string>(spec_of("schedule.kind").default_value), "cosine");
  EXPECT_EQ(c.schedule.kind, ScheduleKind::cosine);
  EXPECT_EQ(std::get<std::string>(spec_of("run.device").default_value), "auto");
  EXPECT_EQ(c.run.device, DeviceChoice::auto_select);
  EXPECT_FALSE(c.model.attention.ramp_alpha.has_value());
  EXPECT_FALSE(c.train.epochs.has_value());
  EXPECT_FALSE(c.train.trainable.has_value());
  EXPECT_FALSE(c.data.sft_format.has_value());
  EXPECT_FALSE(c.profile.steps.has_value());
  // Every field not in the file resolves to its declared default (or stays unset), sourced "default".
  const std::set<std::string> given = {"task", "run.name", "model.from", "data.path", "train.steps"};
  for (const ResolvedField& f : c.resolved.fields()) {
    if (given.count(f.path)) {
      EXPECT_EQ(f.source, Source::file) << f.path;
      continue;
    }
    EXPECT_EQ(f.source, Source::default_value) << f.path;
    if (f.path == "analysis.study") continue;
    const FieldSpec& s = spec_of(f.path);
    if (s.presence == Presence::optional) EXPECT_TRUE(is_unset(f.value)) << f.path;
    else EXPECT_EQ(format_value(f.value), format_value(s.default_value)) << f.path;
  }
}

TEST(Config, OverridesReplaceFileValuesWithTypedValues) {
  TempYaml clean(minimal_pretrain_yaml() + "optim:\n  lr: 0.001\n");
  ExperimentConfig c = load_experiment(
      clean.path(), {"optim.lr=2.5e-4", "train.trainable=[*.k_proj.*, *.v_proj.*]", "profile.steps=3,9",
                     "model.arch.num_hidden_layers=3", "run.device=cuda", "run.dtype=bf16", "log.progress=false",
                     "data.shard_dir=/tmp/shards", "model.attention.norm=ramp", "model.attention.ramp_alpha=0.75",
                     "optim.betas=[0.8,0.95]", "train.steps=50"});
  EXPECT_EQ(c.optim.lr, 2.5e-4);
  ASSERT_TRUE(c.train.trainable.has_value());
  EXPECT_EQ(*c.train.trainable, (std::vector<std::string>{"*.k_proj.*", "*.v_proj.*"}));
  EXPECT_EQ(c.profile.start(), 3);
  EXPECT_EQ(c.profile.end(), 9);
  EXPECT_EQ(c.model.arch.at("num_hidden_layers"), "3");
  EXPECT_EQ(c.run.device, DeviceChoice::cuda);
  EXPECT_EQ(c.run.dtype, DType::bf16);
  EXPECT_FALSE(c.log.progress);
  EXPECT_EQ(c.data.shard_dir.value_or(""), "/tmp/shards");
  EXPECT_EQ(c.model.attention.norm, "ramp");
  EXPECT_EQ(c.model.attention.ramp_alpha.value_or(-1), 0.75);
  EXPECT_EQ(c.optim.betas, (std::vector<double>{0.8, 0.95}));
  EXPECT_EQ(c.train.steps.value_or(0), 50);
  const ResolvedField& lr = c.resolved.at("optim.lr");
  EXPECT_EQ(lr.source, Source::override_arg);
  EXPECT_EQ(lr.where, "command line: optim.lr=2.5e-4");
  EXPECT_EQ(c.resolved.at("model.arch").source, Source::override_arg);

  // The last override of a key wins; null unsets an optional field.
  ExperimentConfig d = load_experiment(clean.path(), {"optim.lr=0.5", "optim.lr=0.25", "train.epochs=2",
                                                      "train.steps=null"});
  EXPECT_EQ(d.optim.lr, 0.25);
  EXPECT_FALSE(d.train.steps.has_value());
  EXPECT_EQ(d.train.epochs.value_or(0), 2);
  EXPECT_EQ(d.resolved.at("train.steps").source, Source::override_arg);
}

// model.vocab_multiple: the padded vocabulary (core/models/model.h) is on by default at 64; 1
// turns it off; below 1 is refused.
TEST(Config, VocabMultipleDefaultsTo64AndIsRangeChecked) {
  TempYaml y(minimal_pretrain_yaml());
  EXPECT_EQ(load_experiment(y.path()).model.vocab_multiple, 64);
  EXPECT_EQ(load_experiment(y.path(), {"model.vocab_multiple=1"}).model.vocab_multiple, 1);
  auto p = problems_of(y.path(), {"model.vocab_multiple=0"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: model.vocab_multiple=0", "out of range")) << dump(p);
}

TEST(Config, OverridesAreTypeCheckedAndNamed) {
  TempYaml y(minimal_pretrain_yaml());
  auto p = problems_of(y.path(), {"optim.lr=abc", "optim.lrr=1", "nonsense", "optim=3", "optim.lr=-1",
                                  "profile.steps=[1,x]", "train.micro_batch=2.5", "log.progress=yes",
                                  "schedule.kind=cosin", "model.arch=4"});
  EXPECT_TRUE(has_problem(p, "command line: optim.lr=abc", "expected float, got 'abc'")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: optim.lrr=1", "did you mean 'optim.lr'?")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: 'nonsense'", "expected key.path=value")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: optim=3", "optim is a section")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: optim.lr=-1", "-1.0 is out of range (0, 10]")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: profile.steps=[1,x]", "element 1: expected int, got 'x'")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: train.micro_batch=2.5", "expected int, got '2.5'")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: log.progress=yes", "expected bool (true or false)")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: schedule.kind=cosin", "did you mean 'cosine'?")) << dump(p);
  EXPECT_TRUE(has_problem(p, "command line: model.arch=4", "override one entry at a time")) << dump(p);
  EXPECT_EQ(p.size(), 10u) << dump(p);
}

TEST(Config, OverridesAreValidatedTogetherWithTheFile) {
  // The file alone is valid; the override makes a cross-field conflict, reported at the override.
  TempYaml y(minimal_pretrain_yaml());
  auto p = problems_of(y.path(), {"train.epochs=3"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, "command line: train.epochs=3");
  EXPECT_NE(p[0].message.find("train.steps and train.epochs are both set"), std::string::npos);
  // And an override can resolve a conflict the file has.
  TempYaml both(minimal_pretrain_yaml() + "schedule:\n  warmup_steps: 500\n");
  EXPECT_EQ(problems_of(both.path()).size(), 1u);
  EXPECT_NO_THROW(load_experiment(both.path(), {"schedule.warmup_steps=10"}));
}

TEST(Config, ResolvedPrintoutReloadsToTheSameValues) {
  ExperimentConfig a = load_experiment(fixture("sft_valid.yaml"), {"optim.lr=0.000123456789", "train.max_tokens=1000000",
                                                                   "model.arch.rope_theta=1e6", "run.name=round.trip"});
  const std::string printed = print_resolved(a.resolved);
  TempYaml y(printed);
  ExperimentConfig b = load_experiment(y.path());
  ASSERT_EQ(a.resolved.fields().size(), b.resolved.fields().size());
  for (size_t i = 0; i < a.resolved.fields().size(); ++i) {
    const ResolvedField& fa = a.resolved.fields()[i];
    const ResolvedField& fb = b.resolved.fields()[i];
    EXPECT_EQ(fa.path, fb.path);
    EXPECT_TRUE(fa.value == fb.value) << fa.path << ": " << format_value(fa.value) << " vs " << format_value(fb.value);
  }
  EXPECT_EQ(b.optim.lr, 0.000123456789);
  EXPECT_EQ(b.train.max_tokens.value_or(0), 1000000);
  EXPECT_EQ(config_hash(a.resolved), config_hash(b.resolved));
  // Every line of the printout names its source; the reloaded one says "file" where the first
  // said "default" or "override", so only the values are compared above.
  EXPECT_NE(printed.find("lr: 0.000123456789"), std::string::npos) << printed;
  EXPECT_NE(printed.find("# override"), std::string::npos);
  EXPECT_NE(printed.find("# default"), std::string::npos);
  EXPECT_NE(printed.find("# file"), std::string::npos);
  // Deterministic: the same input prints the same text.
  EXPECT_EQ(printed, print_resolved(load_experiment(fixture("sft_valid.yaml"),
                                                    {"optim.lr=0.000123456789", "train.max_tokens=1000000",
                                                     "model.arch.rope_theta=1e6", "run.name=round.trip"})
                                        .resolved));
}

TEST(Config, ResolvedPrintoutOfEveryTaskReloads) {
  // The printout spells out every field, defaults included; no cross-field rule may trip on that.
  TempYaml pretrain(minimal_pretrain_yaml());
  for (const std::vector<std::string>& o : std::vector<std::vector<std::string>>{
           {}, {"optim.name=sgd", "optim.momentum=0.9"}, {"task=kv_only", "model.from=/models/qwen"},
           {"task=sft", "data.sft_format=sst", "data.format=tsv"}}) {
    ExperimentConfig a = load_experiment(pretrain.path(), o);
    TempYaml printed(print_resolved(a.resolved));
    ExperimentConfig b;
    ASSERT_NO_THROW(b = load_experiment(printed.path())) << printed.text();
    EXPECT_EQ(config_hash(a.resolved), config_hash(b.resolved));
  }
}

TEST(Config, AwkwardStringsSurviveTheRoundTrip) {
  TempYaml y(minimal_pretrain_yaml());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"run.out_dir", "/tmp/a b#c \"q\" \\ end"}, {"data.tokenizer", "C:\\tok: json"}, {"data.path", "- dash"},
      {"checkpoint.resume", "null"},                {"log.metrics_file", "*.jsonl"},   {"data.shard_dir", "tab\there\x01"},
      {"model.arch.note", "x: y, [z]"},             {"model.arch.flag", "true"}};
  std::vector<std::string> overrides;
  for (const auto& [k, v] : cases) overrides.push_back(k + "=" + v);
  ExperimentConfig a = load_experiment(y.path(), overrides);
  TempYaml printed(print_resolved(a.resolved));
  ExperimentConfig b = load_experiment(printed.path());
  EXPECT_EQ(b.run.out_dir, "/tmp/a b#c \"q\" \\ end") << printed.text();
  EXPECT_EQ(b.data.tokenizer, "C:\\tok: json");
  EXPECT_EQ(b.data.path, "- dash");
  EXPECT_EQ(b.checkpoint.resume, "null");
  EXPECT_EQ(b.log.metrics_file, "*.jsonl");
  EXPECT_EQ(b.data.shard_dir.value_or(""), "tab\there\x01");
  EXPECT_EQ(b.model.arch.at("note"), "x: y, [z]");
  EXPECT_EQ(b.model.arch.at("flag"), "true");
  EXPECT_EQ(config_hash(a.resolved), config_hash(b.resolved));
}

TEST(Config, FloatsPrintInTheShortestFormThatReadsBack) {
  // Random magnitudes from 1e-12 to 1e12: every one must come back bit-identical.
  auto mantissas = rand_uniform(400, -1.0, 1.0, 17);
  auto exponents = rand_uniform(400, -12.0, 12.0, 18);
  for (size_t i = 0; i < mantissas.size(); ++i) {
    double x = mantissas[i] * std::pow(10.0, exponents[i]);
    Value back;
    std::string why;
    ASSERT_TRUE(parse_scalar(FieldType::floating, format_float(x), back, why)) << format_float(x) << ": " << why;
    EXPECT_EQ(std::get<double>(back), x) << format_float(x);
  }
  EXPECT_EQ(format_float(3e-4), "0.0003");
  EXPECT_EQ(format_float(1e-8), "1e-8");
  EXPECT_EQ(format_float(2.0), "2.0");
}

TEST(Config, HashIsStableAndFollowsValuesNotSources) {
  TempYaml y(minimal_pretrain_yaml() + "optim:\n  lr: 0.001\n");
  const uint64_t h = config_hash(load_experiment(y.path()).resolved);
  EXPECT_EQ(h, config_hash(load_experiment(y.path()).resolved));
  EXPECT_EQ(config_hash_hex(load_experiment(y.path()).resolved).size(), 16u);
  // The same values by another route (an override instead of the file) hash the same.
  TempYaml plain(minimal_pretrain_yaml());
  EXPECT_EQ(h, config_hash(load_experiment(plain.path(), {"optim.lr=0.001"}).resolved));
  // Any changed value changes the hash.
  std::set<uint64_t> seen = {h};
  for (const char* o : {"optim.lr=0.002", "run.seed=1235", "run.name=tiny2", "train.steps=101", "log.progress=false",
                        "model.arch.hidden_size=8", "profile.steps=[0,1]", "optim.no_decay=[*.bias]",
                        "checkpoint.resume=never"}) {
    uint64_t other = config_hash(load_experiment(y.path(), {o}).resolved);
    EXPECT_TRUE(seen.insert(other).second) << o << " did not change the hash (or collided)";
  }
}

TEST(Config, RegistryDeclarationsAreConsistent) {
  const auto& fields = core_fields();
  ASSERT_GT(fields.size(), 50u);
  std::set<std::string> sections;
  for (const FieldSpec& f : fields) {
    EXPECT_NO_THROW(check_declaration(f)) << f.path;
    EXPECT_FALSE(f.doc.empty()) << f.path;
    sections.insert(parent_path(f.path).substr(0, f.path.find('.')));
  }
  for (const auto& s : config_sections())
    if (s.name != "analysis") EXPECT_TRUE(sections.count(s.name)) << "section " << s.name << " has no fields";
  // A declaration that breaks its own range is caught.
  FieldSpec bad = spec_of("optim.lr");
  bad.def(50.0);
  EXPECT_THROW(check_declaration(bad), Error);
  FieldSpec no_default = spec_of("optim.lr");
  no_default.has_default = false;
  EXPECT_THROW(check_declaration(no_default), Error);
}

TEST(Config, FieldReferenceListsEveryField) {
  const std::string all = print_field_reference();
  for (const FieldSpec& f : core_fields()) {
    EXPECT_NE(all.find("  " + f.path + "  " + field_type_name(f.type)), std::string::npos) << f.path;
    EXPECT_NE(all.find(f.doc), std::string::npos) << f.path;
  }
  EXPECT_NE(all.find("optim.lr  float, default 0.0003, in (0, 10]"), std::string::npos) << all;
  EXPECT_NE(all.find("schedule.kind  enum, default cosine, one of cosine | linear | constant"), std::string::npos);
  for (const CrossFieldRule& r : cross_field_rules()) EXPECT_NE(all.find(r.summary), std::string::npos) << r.summary;
  const std::string optim = print_field_reference("optim");
  EXPECT_NE(optim.find("optim.lr"), std::string::npos);
  EXPECT_EQ(optim.find("run.name"), std::string::npos);
  EXPECT_THROW(print_field_reference("optimizer"), Error);
}

TEST(Config, DidYouMeanUsesEditDistance) {
  EXPECT_EQ(edit_distance("lrr", "lr"), 1u);
  EXPECT_EQ(edit_distance("wieght_decay", "weight_decay"), 1u);  // one swap
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(closest_word("optm", {"run", "optim", "model"}).value_or(""), "optim");
  EXPECT_FALSE(closest_word("zzz", {"run", "optim"}).has_value());
}

// ---- analysis study schemas -------------------------------------------------------

struct ProbeStudyConfig {
  int64_t layer = 0;
  std::vector<double> depths;
  std::string rows;
  std::optional<int64_t> head;
};

void declare_probe_study(FieldBinder<ProbeStudyConfig>& f) {
  f.field("layer", &ProbeStudyConfig::layer, "layer whose attention is read").required().at_least(0);
  f.field("depths", &ProbeStudyConfig::depths, "needle depths").def(std::vector<double>{0.0, 0.5}).range_closed(0, 1);
  f.field("rows", &ProbeStudyConfig::rows, "query rows").def("question");
  f.field("head", &ProbeStudyConfig::head, "one head; unset: the mean over heads").at_least(0);
}

void register_probe_study_once() {
  if (!find_study("probe_test")) register_study<ProbeStudyConfig>("probe_test", "test study", declare_probe_study);
}

TEST(ConfigStudy, SelectedStudyFieldsAreTypedDefaultedAndOverridable) {
  register_probe_study_once();
  TempYaml y(minimal_pretrain_yaml() + "analysis:\n  study: probe_test\n  layer: 3\n  depths: [0.25, 0.75]\n");
  ExperimentConfig c = load_experiment(y.path(), {"analysis.head=2"});
  ASSERT_TRUE(c.analysis.active());
  const auto& s = c.analysis.as<ProbeStudyConfig>();
  EXPECT_EQ(s.layer, 3);
  EXPECT_EQ(s.depths, (std::vector<double>{0.25, 0.75}));
  EXPECT_EQ(s.rows, "question");  // default
  EXPECT_EQ(s.head.value_or(-1), 2);
  EXPECT_EQ(c.resolved.at("analysis.head").source, Source::override_arg);
  // The printout carries the study's fields and reloads.
  TempYaml again(print_resolved(c.resolved));
  EXPECT_EQ(load_experiment(again.path()).analysis.as<ProbeStudyConfig>().head.value_or(-1), 2);
  EXPECT_NE(print_field_reference("analysis").find("analysis.depths"), std::string::npos);
  // The study can also be chosen on the command line.
  TempYaml plain(minimal_pretrain_yaml());
  EXPECT_EQ(load_experiment(plain.path(), {"analysis.study=probe_test", "analysis.layer=1"})
                .analysis.as<ProbeStudyConfig>()
                .layer,
            1);
}

TEST(ConfigStudy, StudyFieldsAreCheckedLikeAnyOther) {
  register_probe_study_once();
  TempYaml y(minimal_pretrain_yaml() + "analysis:\n  study: probe_test\n  depths: [0.5, 2]\n  layerr: 1\n");
  auto p = problems_of(y.path());
  EXPECT_TRUE(has_problem(p, y.at("2]"), "analysis.depths: element 1: 2.0 is out of range [0, 1]")) << dump(p);
  EXPECT_TRUE(has_problem(p, y.at("layerr"), "did you mean 'analysis.layer'?")) << dump(p);
  EXPECT_TRUE(has_problem(p, y.at("analysis:"), "missing required key 'analysis.layer'")) << dump(p);
  EXPECT_EQ(p.size(), 3u) << dump(p);

  // An unknown study is one problem (its fields cannot be checked without it).
  TempYaml unknown(minimal_pretrain_yaml() + "analysis:\n  study: probe_tset\n  layer: 1\n");
  auto q = problems_of(unknown.path());
  ASSERT_EQ(q.size(), 1u) << dump(q);
  EXPECT_EQ(q[0].where, unknown.at("probe_tset"));
  EXPECT_NE(q[0].message.find("did you mean 'probe_test'?"), std::string::npos) << q[0].message;

  // No study: the section holds only `study`.
  TempYaml none(minimal_pretrain_yaml() + "analysis:\n  layer: 1\n");
  auto r = problems_of(none.path());
  ASSERT_EQ(r.size(), 1u) << dump(r);
  EXPECT_TRUE(has_problem(r, none.at("layer"), "analysis.study is none")) << dump(r);
  EXPECT_THROW(register_study<ProbeStudyConfig>("probe_test", "again", declare_probe_study), Error);
}

}  // namespace attnlab::test
