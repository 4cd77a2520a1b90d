#include "studies/study_command.h"

#include <deque>

#include "core/config/printer.h"
#include "core/config/registry.h"
#include "core/config/suggest.h"
#include "core/error.h"

namespace attnlab::studies {

namespace {

using config::FieldSpec;
using config::FieldType;
using config::Value;

// A value as the command line writes it: lists as 0,0.25 (the form --help shows).
std::string cli_text(const Value& v) {
  auto join = [](const auto& list, auto f) {
    std::string s;
    for (size_t i = 0; i < list.size(); ++i) s += (i ? "," : "") + f(list[i]);
    return s;
  };
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* l = std::get_if<std::vector<int64_t>>(&v)) return join(*l, [](int64_t x) { return std::to_string(x); });
  if (const auto* l = std::get_if<std::vector<double>>(&v)) return join(*l, [](double x) { return config::format_float(x); });
  if (const auto* l = std::get_if<std::vector<std::string>>(&v)) return join(*l, [](const std::string& x) { return x; });
  return config::format_value(v);
}

std::string help_text(const FieldSpec& f) {
  std::string text = f.doc;
  const std::string constraints = config::describe_constraints(f);
  if (!constraints.empty()) text += "; " + constraints;
  if (f.type == FieldType::boolean) return text;
  if (f.presence == config::Presence::defaulted) text += " (default " + cli_text(f.default_value) + ")";
  if (f.presence == config::Presence::optional) text += " (unset by default)";
  if (is_list(f.type)) text += f.type == FieldType::string_list ? "; repeat for several" : "; comma-separated";
  return text;
}

std::string type_name(const FieldSpec& f) {
  switch (f.type) {
    case FieldType::integer: return "INT";
    case FieldType::floating: return "FLOAT";
    case FieldType::string: return "TEXT";
    case FieldType::path: return "PATH";
    case FieldType::enumeration: return "{" + config::join_words(f.choices, ",") + "}";
    case FieldType::int_list: return "INT,...";
    case FieldType::float_list: return "FLOAT,...";
    case FieldType::string_list: return "TEXT";
    default: return "";
  }
}

// One field of either table and what the command line gave for it.
struct Slot {
  const FieldSpec* spec = nullptr;
  bool in_options = false;  // the command's own table (else the analysis table)
  std::string flag;         // "" for a training-only field: it takes its default
  CLI::Option* option = nullptr;
  std::vector<std::string> texts;  // every value given, in order
  bool flag_value = false;         // booleans
};

struct CommandState {
  std::shared_ptr<const Study> study;
  std::string command_path;  // "analyze needle", for messages
  FieldTable analysis, options;
  std::deque<Slot> slots;  // stable addresses: CLI11 writes into them
};

// The value of one slot after parsing: given, or the field's default.
Value slot_value(const CommandState& st, const Slot& s) {
  const FieldSpec& f = *s.spec;
  const bool given = s.option && s.option->count() > 0;
  if (!given) {
    if (f.presence == config::Presence::defaulted) return f.default_value;
    if (f.presence == config::Presence::optional) return std::monostate{};
    throw ::attnlab::UsageError(::attnlab::detail::cat(st.command_path, ": ", s.flag.empty() ? f.path : s.flag, " is required"));
  }
  if (f.type == FieldType::boolean) return s.flag_value;
  Value v;
  std::string why;
  bool ok = true;
  if (f.presence == config::Presence::optional && s.texts.size() == 1 && (s.texts[0] == "null" || s.texts[0] == "~")) {
    v = std::monostate{};
  } else if (f.type == FieldType::string_list) {
    v = s.texts;  // one element per value: a path may hold a comma
  } else if (is_list(f.type)) {
    // "0,0.5", "[0, 0.5]" or "0 0.5" (several values): one list, in order.
    std::vector<int64_t> ints;
    std::vector<double> floats;
    for (const std::string& t : s.texts) {
      Value part;
      ok = ok && config::parse_list(f.type, t, part, why);
      if (!ok) break;
      if (const auto* l = std::get_if<std::vector<int64_t>>(&part)) ints.insert(ints.end(), l->begin(), l->end());
      if (const auto* l = std::get_if<std::vector<double>>(&part)) floats.insert(floats.end(), l->begin(), l->end());
    }
    if (f.type == FieldType::int_list) v = ints;
    else v = floats;
  } else {
    ok = config::parse_scalar(f.type, s.texts.back(), v, why);
  }
  if (!ok) throw ::attnlab::UsageError(::attnlab::detail::cat(st.command_path, ": ", s.flag, ": ", why));
  return v;
}

void run(const CommandState& st) {
  std::any fields = st.analysis.make_default();
  std::any options = st.options.make_default();
  for (const Slot& s : st.slots) {
    const FieldSpec& f = *s.spec;
    if (s.flag.empty() && f.presence == config::Presence::required) continue;  // training-only, no default
    const Value v = slot_value(st, s);
    const std::vector<config::ValueProblem> problems = config::check_value(f, v);
    if (!problems.empty())
      throw ::attnlab::UsageError(::attnlab::detail::cat(st.command_path, ": ", s.flag.empty() ? f.path : s.flag, ": ",
                                   problems.front().message));
    f.store(s.in_options ? &options : &fields, v);
  }
  st.study->run_standalone(fields, options);
}

}  // namespace

std::string option_flag(const FieldSpec& f) {
  if (f.cli_flag == config::kNoOption) return "";
  if (!f.cli_flag.empty()) return f.cli_flag;
  std::string name = config::leaf_name(f.path);
  for (char& c : name)
    if (c == '_') c = '-';
  return "--" + name;
}

CLI::App* add_study_command(CLI::App& parent, std::shared_ptr<const Study> study) {
  const StudyCommand cmd = study->command();
  if (cmd.name.empty()) return nullptr;
  auto st = std::make_shared<CommandState>();
  st->study = study;
  st->command_path = parent.get_name() + " " + cmd.name;
  st->analysis = study->analysis_fields();
  st->options = study->command_fields();

  CLI::App* c = parent.add_subcommand(cmd.name, cmd.description);
  if (!cmd.footer.empty()) c->footer(cmd.footer);
  auto add = [&](const FieldTable& table, bool in_options) {
    for (const FieldSpec& f : table.fields) {
      Slot& s = st->slots.emplace_back();
      s.spec = &f;
      s.in_options = in_options;
      s.flag = option_flag(f);
      if (s.flag.empty()) continue;
      CHECK(f.type != FieldType::string_map, "study command ", st->command_path, ": map field '", f.path,
            "' cannot be an option; mark it .training_only()");
      if (f.type == FieldType::boolean) {
        s.option = c->add_flag(s.flag, s.flag_value, help_text(f));
      } else {
        s.option = c->add_option(s.flag, s.texts, help_text(f))->type_name(type_name(f));
        if (!is_list(f.type)) s.option->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        if (f.presence == config::Presence::required) s.option->required();
      }
    }
  };
  add(st->options, true);
  add(st->analysis, false);
  c->callback([st] { run(*st); });
  return c;
}

}  // namespace attnlab::studies
