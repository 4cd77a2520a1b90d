#include "core/config/field.h"

#include <cmath>

#include "core/config/suggest.h"

namespace attnlab::config {

namespace {

std::string number_text(double x, bool integer) {
  if ((integer || x == std::floor(x)) && std::fabs(x) < 9.2e18) return std::to_string(int64_t(x));
  return format_float(x);
}

// A default written as an int literal for a float field (or a float list) is meant as a float.
void coerce(FieldType t, Value& v) {
  if (t == FieldType::floating && std::holds_alternative<int64_t>(v)) {
    v = double(std::get<int64_t>(v));
  } else if (t == FieldType::float_list && std::holds_alternative<std::vector<int64_t>>(v)) {
    const auto ints = std::get<std::vector<int64_t>>(v);
    v = std::vector<double>(ints.begin(), ints.end());
  }
}

bool value_matches_type(FieldType t, const Value& v) {
  switch (t) {
    case FieldType::boolean: return std::holds_alternative<bool>(v);
    case FieldType::integer: return std::holds_alternative<int64_t>(v);
    case FieldType::floating: return std::holds_alternative<double>(v);
    case FieldType::string:
    case FieldType::enumeration:
    case FieldType::path: return std::holds_alternative<std::string>(v);
    case FieldType::int_list: return std::holds_alternative<std::vector<int64_t>>(v);
    case FieldType::float_list: return std::holds_alternative<std::vector<double>>(v);
    case FieldType::string_list: return std::holds_alternative<std::vector<std::string>>(v);
    case FieldType::string_map: return std::holds_alternative<StringMap>(v);
  }
  return false;
}

}  // namespace

bool NumericRange::contains(double x) const {
  if (lo && (lo_open ? !(x > *lo) : !(x >= *lo))) return false;
  if (hi && (hi_open ? !(x < *hi) : !(x <= *hi))) return false;
  return true;
}

std::string NumericRange::text(bool integer) const {
  if (lo && hi)
    return std::string(lo_open ? "(" : "[") + number_text(*lo, integer) + ", " + number_text(*hi, integer) +
           (hi_open ? ")" : "]");
  if (lo) return std::string(lo_open ? "> " : ">= ") + number_text(*lo, integer);
  if (hi) return std::string(hi_open ? "< " : "<= ") + number_text(*hi, integer);
  return "";
}

FieldSpec& FieldSpec::def(Value v) {
  coerce(type, v);
  default_value = std::move(v);
  has_default = true;
  return *this;
}
FieldSpec& FieldSpec::required() { presence = Presence::required; return *this; }
FieldSpec& FieldSpec::optional() { presence = Presence::optional; return *this; }
FieldSpec& FieldSpec::range_closed(double lo, double hi) { range = {lo, hi, false, false}; return *this; }
FieldSpec& FieldSpec::range_open_closed(double lo, double hi) { range = {lo, hi, true, false}; return *this; }
FieldSpec& FieldSpec::range_closed_open(double lo, double hi) { range = {lo, hi, false, true}; return *this; }
FieldSpec& FieldSpec::at_least(double lo) { range = {lo, std::nullopt, false, false}; return *this; }
FieldSpec& FieldSpec::above(double lo) { range = {lo, std::nullopt, true, false}; return *this; }
FieldSpec& FieldSpec::fixed_length(size_t n) { list_length = n; return *this; }
FieldSpec& FieldSpec::as_path() {
  CHECK(type == FieldType::string, path, ": only a string field can be a path");
  type = FieldType::path;
  return *this;
}
FieldSpec& FieldSpec::check(std::string what, std::function<std::string(const Value&)> fn) {
  check_doc = std::move(what);
  extra_check = std::move(fn);
  return *this;
}

FieldSpec& FieldSpec::cli(std::string flag) {
  cli_flag = std::move(flag);
  return *this;
}
FieldSpec& FieldSpec::training_only() {
  cli_flag.assign(1, kNoOption[0]);  // (GCC 12 warns falsely, -Wrestrict, on assigning the literal)
  return *this;
}

std::vector<ValueProblem> check_value(const FieldSpec& spec, const Value& v) {
  std::vector<ValueProblem> problems;
  if (is_unset(v)) return problems;  // presence is the loader's business
  const bool integer = element_type(spec.type) == FieldType::integer;
  auto check_number = [&](double x, const std::string& shown, int64_t element) {
    if (spec.range.contains(x)) return;
    std::string prefix = element < 0 ? "" : "element " + std::to_string(element) + ": ";
    problems.push_back({element, prefix + shown + " is out of range " + spec.range.text(integer)});
  };
  if (const auto* i = std::get_if<int64_t>(&v)) check_number(double(*i), std::to_string(*i), -1);
  if (const auto* d = std::get_if<double>(&v)) check_number(*d, format_float(*d), -1);
  if (const auto* l = std::get_if<std::vector<int64_t>>(&v))
    for (size_t k = 0; k < l->size(); ++k) check_number(double((*l)[k]), std::to_string((*l)[k]), int64_t(k));
  if (const auto* l = std::get_if<std::vector<double>>(&v))
    for (size_t k = 0; k < l->size(); ++k) check_number((*l)[k], format_float((*l)[k]), int64_t(k));
  if (const auto* l = std::get_if<std::vector<std::string>>(&v))
    for (size_t k = 0; k < l->size(); ++k)
      if ((*l)[k].empty()) problems.push_back({int64_t(k), "element " + std::to_string(k) + " is an empty string"});
  if (spec.list_length) {
    size_t n = std::visit([](const auto& x) -> size_t {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>> ||
                    std::is_same_v<T, std::vector<std::string>>)
        return x.size();
      else
        return 0;
    }, v);
    if (n != *spec.list_length)
      problems.push_back({-1, "expected a list of exactly " + std::to_string(*spec.list_length) + " values, got " +
                                  std::to_string(n)});
  }
  if (spec.type == FieldType::enumeration) {
    const std::string& s = std::get<std::string>(v);
    bool ok = false;
    for (const auto& c : spec.choices) ok = ok || c == s;
    if (!ok) {
      std::string msg = "'" + s + "' is not one of: " + join_words(spec.choices, ", ");
      if (auto near = closest_word(s, spec.choices)) msg += "; did you mean '" + *near + "'?";
      problems.push_back({-1, msg});
    }
  }
  if ((spec.type == FieldType::string || spec.type == FieldType::path) && std::get<std::string>(v).empty())
    problems.push_back({-1, "expected a non-empty " + std::string(field_type_name(spec.type))});
  if (problems.empty() && spec.extra_check) {
    std::string why = spec.extra_check(v);
    if (!why.empty()) problems.push_back({-1, why});
  }
  return problems;
}

void check_declaration(const FieldSpec& spec) {
  CHECK(!spec.path.empty() && !spec.doc.empty(), "config field '", spec.path, "' needs a path and a doc line");
  CHECK(static_cast<bool>(spec.store), "config field '", spec.path, "' has no store function");
  if (spec.presence == Presence::defaulted) {
    CHECK(spec.has_default, "config field '", spec.path, "' needs a default, .required() or .optional()");
    CHECK(value_matches_type(spec.type, spec.default_value), "config field '", spec.path, "': default ",
          format_value(spec.default_value), " is not a ", field_type_name(spec.type));
    auto problems = check_value(spec, spec.default_value);
    CHECK(problems.empty(), "config field '", spec.path, "': default ", format_value(spec.default_value),
          " fails its own constraints: ", problems.empty() ? "" : problems.front().message);
  } else {
    CHECK(!spec.has_default, "config field '", spec.path, "' is required/optional but has a default");
  }
  CHECK(spec.presence != Presence::optional || spec.member_is_optional, "config field '", spec.path,
        "' is optional but its struct member is not a std::optional");
  CHECK(spec.type != FieldType::enumeration || !spec.choices.empty(), "config field '", spec.path,
        "' is an enumeration without choices");
  CHECK(spec.cli_flag.empty() || spec.cli_flag == kNoOption ||
            (spec.cli_flag.size() > 2 && spec.cli_flag.compare(0, 2, "--") == 0),
        "config field '", spec.path, "': its command-line flag '", spec.cli_flag, "' must start with --");
  CHECK(spec.range.empty() || spec.type == FieldType::integer || spec.type == FieldType::floating ||
            spec.type == FieldType::int_list || spec.type == FieldType::float_list,
        "config field '", spec.path, "' has a numeric range but is a ", field_type_name(spec.type));
}

}  // namespace attnlab::config
