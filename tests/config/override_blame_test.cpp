// Problems a command-line override causes name the override, not the file's line, and say how to
// unset the file's side of the conflict (`=null` for a field that may stay unset, else its default):
// the cross-field rules (loader) and the buildability checks (attnlab validate / train).
#include <algorithm>

#include "config/config_test_util.h"
#include "core/config/buildable.h"
#include "core/config/override_blame.h"
#include "core/config/registry.h"

namespace attnlab::test {
namespace {

using namespace attnlab::config;

std::string epochs_yaml() {
  std::string y = minimal_pretrain_yaml();
  y.replace(y.find("  steps: 100\n"), 13, "  epochs: 3\n");
  return y;
}

std::vector<Problem> build_problems_of(const std::string& path, const std::vector<std::string>& overrides) {
  try {
    load_runnable_experiment(path, overrides);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  ADD_FAILURE() << path << " validated";
  return {};
}

TEST(OverrideBlame, ConflictWithTheFileNamesTheOverrideAndHowToUnsetTheFileField) {
  TempYaml y(epochs_yaml());
  ASSERT_NO_THROW(load_experiment(y.path()));
  const auto p = problems_of(y.path(), {"train.steps=5"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, "command line: train.steps=5") << dump(p);
  EXPECT_NE(p[0].message.find("train.steps and train.epochs are both set"), std::string::npos) << dump(p);
  EXPECT_NE(p[0].message.find("train.epochs is set at " + y.at("epochs")), std::string::npos) << dump(p);
  EXPECT_NE(p[0].message.find("add train.epochs=null to the command line"), std::string::npos) << dump(p);
  // The suggestion works as written.
  const ExperimentConfig c = load_experiment(y.path(), {"train.steps=5", "train.epochs=null"});
  EXPECT_EQ(c.train.steps.value_or(0), 5);
  EXPECT_FALSE(c.train.epochs.has_value());

  // The other way round: the file's train.steps, the command line's train.epochs.
  TempYaml s(minimal_pretrain_yaml());
  const auto q = problems_of(s.path(), {"train.epochs=3"});
  ASSERT_EQ(q.size(), 1u) << dump(q);
  EXPECT_EQ(q[0].where, "command line: train.epochs=3");
  EXPECT_NE(q[0].message.find("add train.steps=null"), std::string::npos) << dump(q);
}

TEST(OverrideBlame, TheOverridePointedAtEvenWhenTheRuleBlamesTheFileFieldFirst) {
  // profile.steps ends after train.steps: the rule blames profile.steps first, but the override
  // made the conflict.
  TempYaml y(minimal_pretrain_yaml() + "profile:\n  steps: [10, 20]\n");
  ASSERT_NO_THROW(load_experiment(y.path()));
  const auto p = problems_of(y.path(), {"train.steps=15"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, "command line: train.steps=15") << dump(p);
  EXPECT_NE(p[0].message.find("profile.steps is set at " + y.at("steps: [10")), std::string::npos) << dump(p);
  EXPECT_NE(p[0].message.find("profile.steps=null"), std::string::npos) << dump(p);
}

TEST(OverrideBlame, AnOverrideThatUnsetsAFieldIsNamed) {
  // train.epochs=null leaves nothing saying how long to train: the override is the cause.
  TempYaml y(epochs_yaml());
  const auto p = problems_of(y.path(), {"train.epochs=null"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, "command line: train.epochs=null") << dump(p);
  EXPECT_NE(p[0].message.find("set train.steps or train.epochs"), std::string::npos) << dump(p);
  EXPECT_EQ(p[0].message.find("=null to the command line"), std::string::npos) << "nothing to unset:\n" << dump(p);
}

TEST(OverrideBlame, FileOnlyProblemsStillPointAtTheFile) {
  TempYaml y(minimal_pretrain_yaml() + "profile:\n  steps: [10, 200]\n");
  const auto p = problems_of(y.path(), {"optim.lr=1e-3"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, y.at("steps: [10")) << dump(p);
  EXPECT_EQ(p[0].message.find("command line"), std::string::npos) << dump(p);
}

TEST(OverrideBlame, BuildabilityProblemsCausedByAnOverrideNameIt) {
  // The file builds (two_pass on GPT-2); model.from=init:decoder_paper makes it a from-scratch
  // decoder, which has no LM head for the two-pass entropy.
  std::string text = minimal_pretrain_yaml();
  text.insert(text.find("data:\n"), "  attention:\n    variant: two_pass\n");
  TempYaml d(text);
  ASSERT_NO_THROW(load_runnable_experiment(d.path()));
  const auto p = build_problems_of(d.path(), {"model.from=init:decoder_paper"});
  ASSERT_EQ(p.size(), 1u) << dump(p);
  EXPECT_EQ(p[0].where, "command line: model.from=init:decoder_paper") << dump(p);
  EXPECT_NE(p[0].message.find("from-scratch decoder"), std::string::npos) << dump(p);
  EXPECT_NE(p[0].message.find("model.attention.variant is set at " + d.at("variant: two_pass")), std::string::npos)
      << dump(p);
  EXPECT_NE(p[0].message.find("add model.attention.variant=standard"), std::string::npos) << dump(p);
  // An override on the other side of the same conflict is named too (nothing in the file to unset).
  std::string scratch = minimal_pretrain_yaml();
  scratch.replace(scratch.find("init:gpt2"), 9, "init:decoder_paper");
  TempYaml q(scratch);
  const auto r = build_problems_of(q.path(), {"model.attention.variant=two_pass"});
  ASSERT_EQ(r.size(), 1u) << dump(r);
  EXPECT_EQ(r[0].where, "command line: model.attention.variant=two_pass") << dump(r);
}

TEST(OverrideBlame, FieldsNamedInAMessageAreWholePaths) {
  const Schema schema;
  const auto t = fields_named_in("train.steps and train.epochs are both set", schema);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_NE(std::find(t.begin(), t.end(), "train.steps"), t.end());
  EXPECT_NE(std::find(t.begin(), t.end(), "train.epochs"), t.end());
  const auto f = fields_named_in("model.attention.norm: ramp needs model.attention.ramp_alpha.", schema);
  EXPECT_NE(std::find(f.begin(), f.end(), "model.attention.norm"), f.end());
  EXPECT_NE(std::find(f.begin(), f.end(), "model.attention.ramp_alpha"), f.end());
  EXPECT_EQ(std::find(f.begin(), f.end(), "model.attention.ramp_schedule"), f.end());
  EXPECT_TRUE(fields_named_in("xtrain.steps", schema).empty());
}

}  // namespace
}  // namespace attnlab::test
