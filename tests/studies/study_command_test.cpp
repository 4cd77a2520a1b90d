// A study's standalone command is generated from its field tables (studies/study_command.h):
// one option per field, help from the docs, values read and checked like the YAML's, defaults
// for what is not given, training-only fields left out.
#include <gtest/gtest.h>

#include "core/error.h"
#include "studies/study_command.h"

namespace attnlab::test {
namespace {

enum class Rows : uint8_t { question, last };

struct ProbeFields {
  int64_t layer = 0;
  std::vector<double> depths;
  Rows rows = Rows::question;
  bool all_rows = false;
  std::optional<int64_t> head;
  int64_t every_steps = 0;
};

struct ProbeOptions {
  std::vector<std::string> ckpts;
  std::string out;
};

void declare_fields(config::FieldBinder<ProbeFields>& f) {
  f.field("layer", &ProbeFields::layer, "layer whose attention is read").required().at_least(0);
  f.field("depths", &ProbeFields::depths, "needle depths").def(std::vector<double>{0.125, 0.5}).range_closed_open(0, 1);
  f.enum_field("rows", &ProbeFields::rows, {{"question", Rows::question}, {"last", Rows::last}}, "query rows")
      .def("question");
  f.field("all_rows", &ProbeFields::all_rows, "read every row").def(false).cli("--every-row");
  f.field("head", &ProbeFields::head, "one head; unset: the mean over heads").at_least(0);
  f.field("every_steps", &ProbeFields::every_steps, "steps between runs during training").def(7).training_only();
}

void declare_options(config::FieldBinder<ProbeOptions>& f) {
  f.field("ckpt", &ProbeOptions::ckpts, "checkpoint to read").required();
  f.field("out", &ProbeOptions::out, "output folder").def("probe_out").as_path();
}

struct Ran {
  int calls = 0;
  ProbeFields fields;
  ProbeOptions options;
};

class ProbeStudy : public studies::Study {
 public:
  explicit ProbeStudy(Ran& ran) : ran_(ran) {}
  std::string name() const override { return "probe_cli_test"; }
  std::string doc() const override { return "a test study"; }
  studies::FieldTable analysis_fields() const override { return studies::field_table("analysis", declare_fields); }
  studies::StudyCommand command() const override { return {"probe", "probe the attention", "footer text"}; }
  studies::FieldTable command_fields() const override { return studies::field_table("", declare_options); }
  void run_standalone(const std::any& fields, const std::any& options) const override {
    ran_.calls += 1;
    ran_.fields = std::any_cast<const ProbeFields&>(fields);
    ran_.options = std::any_cast<const ProbeOptions&>(options);
  }

 private:
  Ran& ran_;
};

// Parses `args` (after "analyze probe") with a fresh app; returns what the study got.
Ran parse(const std::vector<std::string>& args) {
  Ran ran;
  CLI::App root("test");
  CLI::App* analyze = root.add_subcommand("analyze", "analyses");
  CLI::App* probe = studies::add_study_command(*analyze, std::make_shared<ProbeStudy>(ran));
  EXPECT_NE(probe, nullptr);
  std::vector<std::string> argv = {"analyze", "probe"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::reverse(argv.begin(), argv.end());  // CLI11 takes a vector in reverse order
  root.parse(argv);
  return ran;
}

std::string error_of_parse(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(StudyCommand, FlagsComeFromTheFieldNames) {
  Ran ran;
  ProbeStudy s(ran);
  std::vector<std::string> flags;
  for (const auto& f : s.analysis_fields().fields) flags.push_back(studies::option_flag(f));
  EXPECT_EQ(flags, (std::vector<std::string>{"--layer", "--depths", "--rows", "--every-row", "--head", ""}));
  for (const auto& f : s.command_fields().fields) flags.push_back(studies::option_flag(f));
  EXPECT_EQ(flags.back(), "--out");
}

TEST(StudyCommand, OptionsHelpAndTrainingOnlyFields) {
  Ran ran;
  CLI::App root("test");
  CLI::App* analyze = root.add_subcommand("analyze", "analyses");
  CLI::App* probe = studies::add_study_command(*analyze, std::make_shared<ProbeStudy>(ran));
  ASSERT_NE(probe, nullptr);
  for (const char* flag : {"--layer", "--depths", "--rows", "--every-row", "--head", "--ckpt", "--out"})
    EXPECT_NE(probe->get_option_no_throw(flag), nullptr) << flag;
  EXPECT_EQ(probe->get_option_no_throw("--every-steps"), nullptr);
  EXPECT_EQ(probe->get_option_no_throw("--all-rows"), nullptr);  // renamed by .cli()
  const std::string help = probe->help();
  for (const char* text : {"needle depths", "[0, 1)", "default 0.125,0.5", "one of question | last", "layer whose attention",
                           "checkpoint to read", "footer text"})
    EXPECT_NE(help.find(text), std::string::npos) << text << " not in\n" << help;
  EXPECT_EQ(help.find("steps between runs"), std::string::npos) << help;
}

TEST(StudyCommand, ValuesAreReadCheckedAndDefaulted) {
  const Ran r = parse({"--ckpt", "a.safetensors", "--ckpt", "b,c.safetensors", "--layer", "3", "--depths", "0.25,0.75",
                       "--every-row", "--head", "2"});
  ASSERT_EQ(r.calls, 1);
  EXPECT_EQ(r.options.ckpts, (std::vector<std::string>{"a.safetensors", "b,c.safetensors"}));
  EXPECT_EQ(r.options.out, "probe_out");  // default
  EXPECT_EQ(r.fields.layer, 3);
  EXPECT_EQ(r.fields.depths, (std::vector<double>{0.25, 0.75}));
  EXPECT_EQ(r.fields.rows, Rows::question);  // default
  EXPECT_TRUE(r.fields.all_rows);
  EXPECT_EQ(r.fields.head.value_or(-1), 2);
  EXPECT_EQ(r.fields.every_steps, 7);  // training-only: its declared default

  const Ran q = parse({"--ckpt", "x", "--layer", "0", "--rows", "last", "--depths", "[0.5]", "--out", "o2"});
  EXPECT_EQ(q.fields.rows, Rows::last);
  EXPECT_EQ(q.fields.depths, (std::vector<double>{0.5}));
  EXPECT_FALSE(q.fields.all_rows);
  EXPECT_FALSE(q.fields.head.has_value());
  EXPECT_EQ(q.options.out, "o2");
  EXPECT_EQ(q.fields.depths.size(), 1u);
}

TEST(StudyCommand, BadValuesNameTheOptionAndWhy) {
  std::string e = error_of_parse({"--ckpt", "x", "--layer", "1", "--depths", "0,x"});
  EXPECT_NE(e.find("analyze probe: --depths: element 1: expected float, got 'x'"), std::string::npos) << e;
  e = error_of_parse({"--ckpt", "x", "--layer", "1", "--depths", "0.5,1.5"});
  EXPECT_NE(e.find("--depths: element 1: 1.5 is out of range [0, 1)"), std::string::npos) << e;
  e = error_of_parse({"--ckpt", "x", "--layer", "1", "--rows", "lats"});
  EXPECT_NE(e.find("--rows: 'lats' is not one of: question, last; did you mean 'last'?"), std::string::npos) << e;
  e = error_of_parse({"--ckpt", "x", "--layer", "-1"});
  EXPECT_NE(e.find("--layer: -1 is out of range >= 0"), std::string::npos) << e;
  e = error_of_parse({"--ckpt", "x", "--layer", "two"});
  EXPECT_NE(e.find("--layer: expected int, got 'two'"), std::string::npos) << e;
  // A required option left out is CLI11's own error (before the study runs).
  EXPECT_THROW(parse({"--ckpt", "x"}), CLI::RequiredError);
}

}  // namespace
}  // namespace attnlab::test
