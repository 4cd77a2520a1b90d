#include "core/config/value.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace attnlab::config {

const char* field_type_name(FieldType t) {
  switch (t) {
    case FieldType::boolean: return "bool";
    case FieldType::integer: return "int";
    case FieldType::floating: return "float";
    case FieldType::string: return "string";
    case FieldType::enumeration: return "enum";
    case FieldType::path: return "path";
    case FieldType::int_list: return "list of int";
    case FieldType::float_list: return "list of float";
    case FieldType::string_list: return "list of string";
    case FieldType::string_map: return "map";
  }
  return "?";
}

bool is_list(FieldType t) {
  return t == FieldType::int_list || t == FieldType::float_list || t == FieldType::string_list;
}

FieldType element_type(FieldType t) {
  switch (t) {
    case FieldType::int_list: return FieldType::integer;
    case FieldType::float_list: return FieldType::floating;
    case FieldType::string_list: return FieldType::string;
    default: return t;
  }
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_int(const std::string& s, int64_t& out) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;  // from_chars rejects a leading '+', YAML allows it
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e && b != e;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  // strtod also reads hex floats, "inf" and "nan"; parse_scalar rejects the non-finite ones.
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string unquote(const std::string& s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
    return s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

bool parse_scalar(FieldType t, const std::string& text, Value& out, std::string& why) {
  auto fail = [&](const char* expected) {
    why = std::string("expected ") + expected + ", got '" + text + "'";
    return false;
  };
  switch (t) {
    case FieldType::boolean: {
      std::string l = lower(text);
      if (l == "true") { out = true; return true; }
      if (l == "false") { out = false; return true; }
      return fail("bool (true or false)");
    }
    case FieldType::integer: {
      int64_t v;
      if (!parse_int(text, v)) return fail("int");
      out = v;
      return true;
    }
    case FieldType::floating: {
      double v;
      if (!parse_double(text, v)) return fail("float");
      if (!std::isfinite(v)) return fail("a finite float");
      out = v;
      return true;
    }
    case FieldType::string:
    case FieldType::enumeration:
    case FieldType::path:
      out = text;
      return true;
    default:
      why = std::string("internal: ") + field_type_name(t) + " is not a scalar type";
      return false;
  }
}

bool parse_list(FieldType list_type, const std::string& text, Value& out, std::string& why) {
  std::string body = trim(text);
  if (!body.empty() && body.front() == '[') {
    if (body.back() != ']') {
      why = "expected a " + std::string(field_type_name(list_type)) + " like [1,2] or 1,2, got '" + text + "'";
      return false;
    }
    body = trim(body.substr(1, body.size() - 2));
  }
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  const FieldType et = element_type(list_type);
  if (!body.empty()) {
    size_t start = 0, index = 0;
    while (true) {
      size_t comma = body.find(',', start);
      std::string item = unquote(trim(body.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      Value v;
      std::string item_why;
      if (!parse_scalar(et, item, v, item_why)) {
        why = "element " + std::to_string(index) + ": " + item_why;
        return false;
      }
      if (et == FieldType::integer) ints.push_back(std::get<int64_t>(v));
      else if (et == FieldType::floating) floats.push_back(std::get<double>(v));
      else strings.push_back(std::get<std::string>(v));
      if (comma == std::string::npos) break;
      start = comma + 1;
      ++index;
    }
  }
  if (et == FieldType::integer) out = ints;
  else if (et == FieldType::floating) out = floats;
  else out = strings;
  return true;
}

std::string format_float(double x) {
  char buf[64];
  const double mag = std::fabs(x);
  // Shortest round-trip digits, positional for everyday magnitudes (0.0003, not 3e-04), and
  // scientific with a trimmed exponent (1e-8) for the rest.
  const bool positional = x == 0 || (mag >= 1e-4 && mag < 1e15);
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, x, positional ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, p);
  if (!positional) {
    size_t e = s.find('e');
    size_t digits = e + 2;  // after the exponent sign
    while (digits + 1 < s.size() && s[digits] == '0') s.erase(digits, 1);
    if (s[e + 1] == '+') s.erase(e + 1, 1);
  } else if (s.find('.') == std::string::npos) {
    s += ".0";  // keep a float recognisable as one to a human reader
  }
  return s;
}

std::string format_scalar_string(const std::string& s) {
  static const char* kSpecial[] = {"true", "false", "null", "~", "yes", "no", "on", "off", "y", "n"};
  bool plain = !s.empty();
  for (char c : s) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' ||
              c == '-' || c == '+';
    if (!ok) plain = false;
  }
  if (plain) {
    char c0 = s[0];
    if (c0 == '-' || c0 == '+') plain = false;
    std::string l = lower(s);
    for (const char* w : kSpecial)
      if (l == w) plain = false;
  }
  if (plain) return s;
  std::string q = "\"";
  for (char c : s) {
    switch (c) {
      case '"': q += "\\\""; break;
      case '\\': q += "\\\\"; break;
      case '\n': q += "\\n"; break;
      case '\t': q += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {  // YAML wants other control characters escaped
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          q += hex;
        } else {
          q += c;
        }
    }
  }
  return q + "\"";
}

namespace {
template <class L, class F>
std::string join_list(const L& l, F f) {
  std::string s = "[";
  for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + f(l[i]);
  return s + "]";
}

struct FormatVisitor {
  std::string operator()(std::monostate) const { return "null"; }
  std::string operator()(bool b) const { return b ? "true" : "false"; }
  std::string operator()(int64_t i) const { return std::to_string(i); }
  std::string operator()(double d) const { return format_float(d); }
  std::string operator()(const std::string& s) const { return format_scalar_string(s); }
  std::string operator()(const std::vector<int64_t>& l) const {
    return join_list(l, [](int64_t i) { return std::to_string(i); });
  }
  std::string operator()(const std::vector<double>& l) const { return join_list(l, format_float); }
  std::string operator()(const std::vector<std::string>& l) const { return join_list(l, format_scalar_string); }
  std::string operator()(const StringMap& m) const {
    std::string s = "{";
    bool first = true;
    for (const auto& [k, val] : m) {
      s += (first ? "" : ", ") + format_scalar_string(k) + ": " + format_scalar_string(val);
      first = false;
    }
    return s + "}";
  }
};
}  // namespace

std::string format_value(const Value& v) { return std::visit(FormatVisitor{}, v); }

}  // namespace attnlab::config
