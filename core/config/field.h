#pragma once
// One experiment-config field: its dotted path, type, default, constraints and one-line doc,
// plus how to store a checked value into the typed struct of the component that owns it.
// Components declare their fields next to their Config struct with a FieldBinder:
//
//   void declare_fields(FieldBinder<OptimConfig>& f) {
//     f.field("lr", &OptimConfig::lr, "peak learning rate, reached after warmup").def(3e-4).above(0);
//   }
//
// The registry built from these declarations is the only description of the schema: the
// loader, the key=value overrides, `attnlab config fields` and the printed resolved config
// all read it.
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/config/value.h"
#include "core/error.h"

namespace attnlab::config {

enum class Presence : uint8_t {
  defaulted,  // has a default; the file may override it
  required,   // must come from the file or the command line
  optional,   // may stay unset (the struct member is a std::optional)
};

// Bounds for numbers (and for every element of a numeric list).
struct NumericRange {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  bool contains(double x) const;
  bool empty() const { return !lo && !hi; }
  // "[0, 1]", "(0, 10]", ">= 1", "> 0"; integers print without a fraction.
  std::string text(bool integer) const;
};

struct FieldSpec {
  std::string path;  // dotted, e.g. "optim.lr"
  FieldType type = FieldType::string;
  std::string doc;   // one line, shown by `attnlab config fields`
  Presence presence = Presence::defaulted;
  bool has_default = false;
  Value default_value;
  NumericRange range;
  std::vector<std::string> choices;         // enumeration values, in declaration order
  std::optional<size_t> list_length;        // lists of a fixed length
  std::string check_doc;                    // what extra_check accepts, for the listing
  std::function<std::string(const Value&)> extra_check;  // "" when the value is fine
  bool member_is_optional = false;          // the struct member is a std::optional
  bool in_study = false;                    // stored into an analysis study's struct
  // A study field's option on the study's standalone command (studies/study_command.h): empty
  // for --<name> with '-' for '_' (--context-length), another "--name" to keep an existing flag,
  // or kNoOption for a field that has a meaning only during training (every_epochs).
  std::string cli_flag;
  // Writes a checked value into the target object (ExperimentConfig, or the study struct).
  std::function<void(void* target, const Value&)> store;

  // Declaration helpers (chainable).
  FieldSpec& def(Value v);
  FieldSpec& required();
  FieldSpec& optional();
  FieldSpec& range_closed(double lo, double hi);      // [lo, hi]
  FieldSpec& range_open_closed(double lo, double hi); // (lo, hi]
  FieldSpec& range_closed_open(double lo, double hi); // [lo, hi)
  FieldSpec& at_least(double lo);                     // [lo, inf)
  FieldSpec& above(double lo);                        // (lo, inf)
  FieldSpec& fixed_length(size_t n);
  FieldSpec& as_path();
  FieldSpec& check(std::string what_is_accepted, std::function<std::string(const Value&)> fn);
  FieldSpec& cli(std::string flag);  // the standalone command's flag, e.g. "--needle-all-depths"
  FieldSpec& training_only();        // no standalone-command option
};

inline constexpr const char* kNoOption = "-";

// A problem of one value against the field's own constraints, without a location. `element`
// is the list index it concerns (so the loader can point at that element), -1 for the whole value.
struct ValueProblem {
  int64_t element = -1;
  std::string message;
};
// Problems of one value against the field's own constraints (range, choices, length, extra
// check); empty when the value is fine.
std::vector<ValueProblem> check_value(const FieldSpec& spec, const Value& v);
// Throws when a declaration is inconsistent (no default and not required/optional, a
// default outside its own range, ...): a programming error, caught by the registry tests.
void check_declaration(const FieldSpec& spec);

namespace detail {
template <class M> struct MemberTraits;
template <> struct MemberTraits<bool> { static constexpr FieldType type = FieldType::boolean; };
template <> struct MemberTraits<int64_t> { static constexpr FieldType type = FieldType::integer; };
template <> struct MemberTraits<double> { static constexpr FieldType type = FieldType::floating; };
template <> struct MemberTraits<std::string> { static constexpr FieldType type = FieldType::string; };
template <> struct MemberTraits<std::vector<int64_t>> { static constexpr FieldType type = FieldType::int_list; };
template <> struct MemberTraits<std::vector<double>> { static constexpr FieldType type = FieldType::float_list; };
template <> struct MemberTraits<std::vector<std::string>> { static constexpr FieldType type = FieldType::string_list; };
template <> struct MemberTraits<StringMap> { static constexpr FieldType type = FieldType::string_map; };

template <class M> struct IsOptional : std::false_type { using inner = M; };
template <class M> struct IsOptional<std::optional<M>> : std::true_type { using inner = M; };

template <class M>
void assign(M& dst, const Value& v) {
  if constexpr (IsOptional<M>::value) {
    if (is_unset(v)) dst.reset();
    else assign(dst.emplace(), v);
  } else {
    dst = std::get<M>(v);
  }
}
}  // namespace detail

// Declares the fields of one component struct S under a dotted prefix. `locate` maps the
// loader's target object to the S inside it.
template <class S>
class FieldBinder {
 public:
  using Locate = std::function<S*(void*)>;
  FieldBinder(std::deque<FieldSpec>& out, std::string prefix, Locate locate, bool in_study = false)
      : out_(out), prefix_(std::move(prefix)), locate_(std::move(locate)), in_study_(in_study) {}

  // A field whose type follows from the member's C++ type (bool, int64_t, double,
  // std::string, vectors of those, StringMap, or std::optional of any of them).
  template <class M>
  FieldSpec& field(const std::string& name, M S::*member, std::string doc) {
    using Inner = typename detail::IsOptional<M>::inner;
    FieldSpec& f = add(name, detail::MemberTraits<Inner>::type, std::move(doc));
    f.member_is_optional = detail::IsOptional<M>::value;
    if (f.member_is_optional) f.presence = Presence::optional;
    f.store = [locate = locate_, member](void* target, const Value& v) {
      detail::assign(locate(target)->*member, v);
    };
    return f;
  }

  // An enumeration stored as a C++ enum (or std::optional of one); `names` pairs each
  // accepted spelling with its value.
  template <class M>
  FieldSpec& enum_field(const std::string& name, M S::*member,
                        std::vector<std::pair<std::string, typename detail::IsOptional<M>::inner>> names,
                        std::string doc) {
    static_assert(std::is_enum_v<typename detail::IsOptional<M>::inner>);
    FieldSpec& f = add(name, FieldType::enumeration, std::move(doc));
    for (const auto& [n, e] : names) f.choices.push_back(n);
    f.member_is_optional = detail::IsOptional<M>::value;
    if (f.member_is_optional) f.presence = Presence::optional;
    f.store = [locate = locate_, member, names = std::move(names)](void* target, const Value& v) {
      M& dst = locate(target)->*member;
      if constexpr (detail::IsOptional<M>::value) {
        if (is_unset(v)) { dst.reset(); return; }
      }
      const std::string& s = std::get<std::string>(v);
      for (const auto& [n, e] : names)
        if (n == s) { dst = e; return; }
      FAIL_WITH("config: '", s, "' is not a value of this enumeration");
    };
    return f;
  }

  // The fields of a nested struct, under "<prefix>.<name>".
  template <class T>
  FieldBinder<T> nested(const std::string& name, T S::*member) {
    Locate outer = locate_;
    return FieldBinder<T>(out_, join(name), [outer, member](void* t) { return &(outer(t)->*member); },
                          in_study_);
  }

  const std::string& prefix() const { return prefix_; }

 private:
  FieldSpec& add(const std::string& name, FieldType type, std::string doc) {
    FieldSpec& f = out_.emplace_back();
    f.path = join(name);
    f.type = type;
    f.doc = std::move(doc);
    f.in_study = in_study_;
    return f;
  }
  std::string join(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

  std::deque<FieldSpec>& out_;
  std::string prefix_;
  Locate locate_;
  bool in_study_;
};

}  // namespace attnlab::config
