// `base:` in experiment files: a file loads its base first and its own keys on top (sections and
// map fields merge, scalars and lists are replaced), chains work, cycles are refused, problems keep
// the FILE:LINE:COLUMN of the file that holds the bad value, and the printout names each value's file.
#include <filesystem>
#include <fstream>
#include <map>

#include "config/config_test_util.h"
#include "studies/needle/needle_study.h"
#include "core/config/printer.h"
#include "support/testing.h"

namespace attnlab::test {

using namespace attnlab::config;

namespace {

namespace fs = std::filesystem;

// A temporary folder of named YAML files; `at` finds positions the way TempYaml::at does.
class YamlDir {
 public:
  YamlDir() {
    char tmpl[] = "/tmp/attnlab_base_XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  ~YamlDir() { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = fs::path(dir_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    texts_[name] = text;
    return p.string();
  }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  // "PATH:LINE:COLUMN" of the first `needle` in file `name`, with PATH as `shown`.
  std::string at(const std::string& name, const std::string& needle, const std::string& shown) const {
    const std::string& t = texts_.at(name);
    const size_t pos = t.find(needle);
    EXPECT_NE(pos, std::string::npos) << needle;
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && pos != std::string::npos; ++i) {
      if (t[i] == '\n') line++, col = 1;
      else ++col;
    }
    return shown + ":" + std::to_string(line) + ":" + std::to_string(col);
  }

 private:
  std::string dir_;
  std::map<std::string, std::string> texts_;
};

const std::string kBase =
    "task: pretrain\n"
    "run:\n"
    "  name: base-run\n"
    "  seed: 3\n"
    "model:\n"
    "  from: init:gpt2\n"
    "  arch: {n_layer: 2, n_embd: 32}\n"
    "data:\n"
    "  path: corpus.txt\n"
    "  seq_len: 64\n"
    "train:\n"
    "  steps: 100\n"
    "optim:\n"
    "  lr: 1.0e-3\n"
    "  betas: [0.8, 0.9]\n";

}  // namespace

TEST(ConfigBase, FileKeysGoOnTopOfTheBase) {
  YamlDir d;
  d.write("base.yaml", kBase);
  const std::string child = d.write("child.yaml",
                                    "base: base.yaml\n"
                                    "run: {name: child-run}\n"
                                    "model:\n"
                                    "  arch: {n_embd: 48, n_head: 4}\n"
                                    "optim: {betas: [0.7, 0.95]}\n");
  const ExperimentConfig c = load_experiment(child);
  EXPECT_EQ(c.run.name, "child-run");  // replaced
  EXPECT_EQ(c.run.seed, 3);            // the base's, the section merged key by key
  EXPECT_EQ(c.model.from, "init:gpt2");
  EXPECT_EQ(c.model.arch, (StringMap{{"n_layer", "2"}, {"n_embd", "48"}, {"n_head", "4"}}));  // merged entry by entry
  EXPECT_EQ(c.optim.betas, (std::vector<double>{0.7, 0.95}));  // a list is replaced
  EXPECT_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.data.seq_len, 64);
  // Where each value came from: the child's keys in the child, the rest in the base.
  EXPECT_EQ(c.resolved.at("run.name").where, d.at("child.yaml", "name:", child));
  EXPECT_EQ(c.resolved.at("run.seed").where, d.at("base.yaml", "seed:", d.path("base.yaml")));
  EXPECT_EQ(c.resolved.files(), (std::vector<std::string>{child, d.path("base.yaml")}));
  // Overrides still come last.
  EXPECT_EQ(load_experiment(child, {"run.seed=9", "model.arch.n_layer=5"}).model.arch.at("n_layer"), "5");
}

TEST(ConfigBase, ChainsResolveRelativeToEachFile) {
  YamlDir d;
  d.write("common/root.yaml", kBase);
  d.write("common/mid.yaml", "base: root.yaml\ndata: {seq_len: 128}\noptim: {lr: 2.0e-3}\n");
  const std::string leaf = d.write("studies/leaf.yaml", "base: ../common/mid.yaml\noptim: {lr: 5.0e-4}\n");
  const ExperimentConfig c = load_experiment(leaf);
  EXPECT_EQ(c.data.seq_len, 128);
  EXPECT_EQ(c.optim.lr, 5e-4);
  EXPECT_EQ(c.run.name, "base-run");
  ASSERT_EQ(c.resolved.files().size(), 3u);
  EXPECT_EQ(c.resolved.files()[2], (fs::path(d.path("common/root.yaml")).lexically_normal()).string());
}

TEST(ConfigBase, CyclesAndMissingBasesAreRefusedAtTheBaseKey) {
  YamlDir d;
  const std::string a = d.write("a.yaml", "base: b.yaml\ntask: pretrain\n");
  d.write("b.yaml", "base: a.yaml\n");
  auto p = problems_of(a);
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, d.at("b.yaml", "a.yaml", d.path("b.yaml")));
  EXPECT_NE(p[0].message.find("cycle"), std::string::npos) << p[0].message;

  const std::string self = d.write("self.yaml", "base: ./self.yaml\n");
  p = problems_of(self);
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_NE(p[0].message.find("cycle"), std::string::npos) << p[0].message;

  const std::string missing = d.write("missing.yaml", "task: pretrain\nbase: nowhere.yaml\n");
  p = problems_of(missing);
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, d.at("missing.yaml", "nowhere.yaml", missing));
  EXPECT_NE(p[0].message.find("cannot read"), std::string::npos) << p[0].message;

  const std::string listed = d.write("listed.yaml", "base: [a.yaml]\n");
  p = problems_of(listed);
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, d.at("listed.yaml", "[a.yaml]", listed));
}

TEST(ConfigBase, ProblemsPointIntoTheFileThatHoldsTheValue) {
  YamlDir d;
  d.write("base.yaml", kBase + "schedule: {kind: cosin}\n");
  const std::string child = d.write("child.yaml", "base: base.yaml\noptim: {lr: fast}\ntrain: {stepz: 3}\n");
  const auto p = problems_of(child);
  EXPECT_TRUE(has_problem(p, d.at("base.yaml", "cosin", d.path("base.yaml")), "schedule.kind")) << dump(p);
  EXPECT_TRUE(has_problem(p, d.at("child.yaml", "fast", child), "optim.lr")) << dump(p);
  EXPECT_TRUE(has_problem(p, d.at("child.yaml", "stepz", child), "did you mean")) << dump(p);
  EXPECT_EQ(p.size(), 3u) << dump(p);
  // A cross-field rule blames the file that set the field: the child's warmup against the base's steps.
  const std::string rule = d.write("rule.yaml", "base: base2.yaml\nschedule: {warmup_steps: 500}\n");
  d.write("base2.yaml", kBase);
  const auto r = problems_of(rule);
  ASSERT_EQ(r.size(), 1u) << dump(r);
  EXPECT_EQ(r[0].where.rfind(rule + ":", 0), 0u) << dump(r);
}

TEST(ConfigBase, PrintoutNamesEachValuesFileAndReloads) {
  YamlDir d;
  d.write("base.yaml", kBase);
  const std::string child = d.write("child.yaml", "base: base.yaml\nrun: {name: child-run}\n");
  const ExperimentConfig c = load_experiment(child);
  const std::string printed = print_resolved(c.resolved);
  EXPECT_NE(printed.find("# files: " + child + ", base " + d.path("base.yaml")), std::string::npos) << printed;
  EXPECT_NE(printed.find("# file " + d.at("child.yaml", "name:", child)), std::string::npos) << printed;
  EXPECT_NE(printed.find("# file " + d.at("base.yaml", "seed:", d.path("base.yaml"))), std::string::npos) << printed;
  EXPECT_NE(printed.find("# default"), std::string::npos);
  TempYaml again(printed);
  EXPECT_EQ(config_hash(load_experiment(again.path()).resolved), config_hash(c.resolved));
  // A file without a base prints as before: "file" alone.
  const std::string plain = print_resolved(load_experiment(d.path("base.yaml")).resolved);
  EXPECT_EQ(plain.find("# files:"), std::string::npos);
  EXPECT_NE(plain.find("# file\n"), std::string::npos);
}

// The study's two files: differential.yaml now holds only its differences and names standard.yaml
// as its base. Both must resolve to exactly what the original full files (kept as fixtures) gave.
TEST(ConfigBase, DiffVsStandardFilesResolveAsTheirOriginalFullFiles) {
  analysis::register_needle_study();
  const std::string src = ATTNLAB_SOURCE_DIR;
  for (const char* variant : {"standard", "differential"}) {
    const ExperimentConfig now = load_experiment(src + "/experiments/diff-vs-standard/" + variant + ".yaml");
    const ExperimentConfig full =
        load_experiment(src + "/tests/config/fixtures/diff-vs-standard/" + std::string(variant) + ".full.yaml");
    ASSERT_EQ(now.resolved.fields().size(), full.resolved.fields().size()) << variant;
    for (size_t i = 0; i < now.resolved.fields().size(); ++i) {
      const ResolvedField& a = now.resolved.fields()[i];
      const ResolvedField& b = full.resolved.fields()[i];
      EXPECT_EQ(a.path, b.path) << variant;
      EXPECT_TRUE(a.value == b.value) << variant << " " << a.path << ": " << format_value(a.value) << " vs "
                                      << format_value(b.value);
      EXPECT_EQ(a.source == Source::default_value, b.source == Source::default_value) << variant << " " << a.path;
    }
    EXPECT_EQ(config_hash(now.resolved), config_hash(full.resolved)) << variant;
  }
  const ExperimentConfig diff = load_experiment(src + "/experiments/diff-vs-standard/differential.yaml");
  EXPECT_EQ(diff.resolved.files().size(), 2u);
  EXPECT_EQ(diff.run.name, "diff-vs-standard-differential");
  EXPECT_EQ(diff.model.attention.variant, "differential");
}

}  // namespace attnlab::test
