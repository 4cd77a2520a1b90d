// The analysis switched off: `analysis.study=none` on the command line (over a file that selects a
// study), `analysis: {study: none}` in the file, or no analysis section at all. `none` is the one
// value that means off; it loads without a problem and leaves no study fields behind.
#include "config/config_test_util.h"
#include "core/config/printer.h"
#include "studies/registry.h"

namespace attnlab::test {
namespace {

using namespace config;

std::string study_file() { return std::string(ATTNLAB_SOURCE_DIR) + "/experiments/diff-vs-standard/standard.yaml"; }

TEST(AnalysisOff, NoneOnTheCommandLineSetsTheFilesStudyAndItsFieldsAside) {
  studies::install_builtin_studies();
  // The file selects answer_to_noise and sets four of its fields.
  const ExperimentConfig with = load_experiment(study_file());
  ASSERT_TRUE(with.analysis.active());
  EXPECT_TRUE(with.resolved.is_given("analysis.every_epochs"));

  const ExperimentConfig off = load_experiment(study_file(), {"analysis.study=none"});
  EXPECT_FALSE(off.analysis.active());
  EXPECT_EQ(off.analysis.study, "none");
  EXPECT_FALSE(off.analysis.fields.has_value());
  EXPECT_EQ(off.resolved.at("analysis.study").source, Source::override_arg);
  for (const ResolvedField& f : off.resolved.fields())
    EXPECT_TRUE(f.path.rfind("analysis.", 0) != 0 || f.path == "analysis.study") << f.path;
  // Everything else is the file's, as without the override.
  EXPECT_EQ(off.train.micro_batch, with.train.micro_batch);
  EXPECT_EQ(off.optim.lr, with.optim.lr);
  // The printed config reloads with the analysis off and no override.
  TempYaml printed(print_resolved(off.resolved));
  EXPECT_FALSE(load_experiment(printed.path()).analysis.active());

  // Study fields given on the command line with the study off are still errors.
  auto p = problems_of(study_file(), {"analysis.study=none", "analysis.samples=3"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_NE(p[0].message.find("analysis.study is none"), std::string::npos) << dump(p);
}

TEST(AnalysisOff, NoneInTheFileOrNoSectionIsOff) {
  studies::install_builtin_studies();
  TempYaml none(minimal_pretrain_yaml() + "analysis:\n  study: none\n");
  EXPECT_FALSE(load_experiment(none.path()).analysis.active());
  TempYaml flow(minimal_pretrain_yaml() + "analysis: {study: none}\n");
  EXPECT_FALSE(load_experiment(flow.path()).analysis.active());
  TempYaml empty(minimal_pretrain_yaml() + "analysis:\n");
  EXPECT_FALSE(load_experiment(empty.path()).analysis.active());
  TempYaml absent(minimal_pretrain_yaml());
  const ExperimentConfig c = load_experiment(absent.path());
  EXPECT_FALSE(c.analysis.active());
  EXPECT_EQ(c.resolved.at("analysis.study").source, Source::default_value);
}

TEST(AnalysisOff, NoneIsTheOneSpellingOfOff) {
  studies::install_builtin_studies();
  for (const char* other : {"off", "null", "false", "None"}) {
    auto p = problems_of(study_file(), {std::string("analysis.study=") + other});
    ASSERT_FALSE(p.empty()) << other;
    bool names_none = false;
    for (const auto& q : p) names_none = names_none || q.message.find("none") != std::string::npos;
    EXPECT_TRUE(names_none) << other << ":\n" << dump(p);
  }
}

TEST(AnalysisOff, AnotherStudyOnTheCommandLineAlsoSetsTheFilesFieldsAside) {
  studies::install_builtin_studies();
  struct Other {
    int64_t head = 0;
  };
  if (!find_study("other_off_test"))
    register_study<Other>("other_off_test", "test study", [](FieldBinder<Other>& f) {
      f.field("head", &Other::head, "a head").def(1).at_least(0);
    });
  const ExperimentConfig c = load_experiment(study_file(), {"analysis.study=other_off_test", "analysis.head=4"});
  EXPECT_EQ(c.analysis.study, "other_off_test");
  EXPECT_EQ(c.analysis.as<Other>().head, 4);
  for (const ResolvedField& f : c.resolved.fields()) EXPECT_NE(f.path, "analysis.every_epochs");
}

}  // namespace
}  // namespace attnlab::test
