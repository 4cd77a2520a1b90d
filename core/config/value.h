#pragma once
// The values an experiment-config field can hold, and the one text syntax they are read
// from and written to (shared by the YAML loader, the key=value overrides and the printer,
// so that a printed config reloads to exactly the same values).
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace attnlab::config {

enum class FieldType : uint8_t {
  boolean,
  integer,
  floating,
  string,
  enumeration,  // a string from a fixed list of choices
  path,         // a file or folder name (not checked for existence when loading)
  int_list,
  float_list,
  string_list,
  string_map,   // name -> scalar text, e.g. model.arch overrides
};

const char* field_type_name(FieldType t);
bool is_list(FieldType t);
// The element type of a list type (integer for int_list, ...); t itself otherwise.
FieldType element_type(FieldType t);

using StringMap = std::map<std::string, std::string>;
// monostate: an optional field left unset. Enumerations and paths hold std::string.
using Value = std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<int64_t>,
                           std::vector<double>, std::vector<std::string>, StringMap>;

inline bool is_unset(const Value& v) { return std::holds_alternative<std::monostate>(v); }

// Parses one scalar of a non-list, non-map type from its text. Returns false and sets `why`
// ("expected float, got 'fast'") when the text is not of that type. Booleans are exactly
// true/false (any case), not YAML 1.1's yes/no/on/off; integers reject fractions; floats
// must be finite.
bool parse_scalar(FieldType t, const std::string& text, Value& out, std::string& why);
// Parses a list of a list type from its command-line text: "[1, 2]", "1,2" or "[]" (elements may
// be quoted); `why` names the element that is not of the element type.
bool parse_list(FieldType list_type, const std::string& text, Value& out, std::string& why);

// YAML text of a value, in flow style for lists and maps ({} / [] when empty; null when
// unset). Floats use the shortest form that reads back to the same double; strings are
// double-quoted only when plain YAML would misread them.
std::string format_value(const Value& v);
std::string format_scalar_string(const std::string& s);
std::string format_float(double x);

}  // namespace attnlab::config
