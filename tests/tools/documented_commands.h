#pragma once
// The commands attnlab's documentation shows a user, gathered where the user reads them: the
// README's ```bash blocks, the experiment files' header comments (indented command lines and
// `attnlab ...` in backquotes) and the Example:/Examples: parts of every `--help` text.
// tests/tools/documented_commands_test.cpp runs each of them.
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace attnlab::test::doc {

struct DocCommand {
  std::string where;  // "README.md:61", "experiments/quickstart.yaml:7", "attnlab train --help"
  std::string text;   // as written: continuation lines joined, a trailing # comment removed
};


inline std::string squeeze_blanks(const std::string& s);

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

inline std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

inline bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// A line that begins a command (the programs the documentation runs).
inline bool is_command_start(const std::string& t) {
  for (const char* w : {"attnlab ", "build/attnlab ", "/usr/bin/python3 ", "mpirun ", "srun ", "sbatch ", "echo ",
                        "bash ", "cmake ", "ctest "})
    if (starts_with(t, w)) return true;
  return t == "attnlab" || t == "build/attnlab";
}

// Joins `\`-continued lines starting at lines[i] (already comment-stripped by `clean`); advances i.
template <class Clean>
inline std::string joined(const std::vector<std::string>& lines, size_t& i, Clean clean) {
  std::string cmd;
  for (;;) {
    std::string t = clean(lines[i]);
    const bool more = !t.empty() && t.back() == '\\' && i + 1 < lines.size();
    if (more) t.pop_back();
    cmd += t + " ";
    if (!more) break;
    ++i;
  }
  return squeeze_blanks(cmd);
}


inline std::string strip_shell_comment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return trim(line.substr(0, i));
    }
  }
  return trim(line);
}

inline std::string squeeze_blanks(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\t' || c == '\r') c = ' ';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

inline std::vector<DocCommand> markdown_commands(const std::string& text, const std::string& name) {
  std::vector<DocCommand> out;
  const std::vector<std::string> lines = lines_of(text);
  bool in_bash = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string t = trim(lines[i]);
    if (starts_with(t, "```")) {
      in_bash = !in_bash && (t == "```bash" || t == "```sh");
      continue;
    }
    if (!in_bash) continue;
    const size_t first = i;
    const std::string cmd = joined(lines, i, [](const std::string& l) { return strip_shell_comment(l); });
    if (!cmd.empty()) out.push_back({name + ":" + std::to_string(first + 1), cmd});
  }
  return out;
}

inline std::vector<DocCommand> yaml_header_commands(const std::string& text, const std::string& name) {
  std::vector<DocCommand> out;
  std::vector<std::string> header;
  for (const std::string& l : lines_of(text)) {
    if (l.empty() || l[0] != '#') break;
    header.push_back(l.substr(1));
  }
  static const std::regex quoted("`((build/)?attnlab [^`]+)`");
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string& body = header[i];
    const size_t first = i;
    for (std::sregex_iterator m(body.begin(), body.end(), quoted), end; m != end; ++m)
      out.push_back({name + ":" + std::to_string(first + 1), squeeze_blanks((*m)[1].str())});
    if (!starts_with(body, "  ") || !is_command_start(trim(body))) continue;
    out.push_back({name + ":" + std::to_string(first + 1),
                   joined(header, i, [](const std::string& l) { return strip_shell_comment(l); })});
  }
  return out;
}

inline std::vector<DocCommand> help_example_commands(const std::string& help, const std::string& name) {
  std::vector<DocCommand> out;
  const std::vector<std::string> lines = lines_of(help);
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t at = lines[i].find("Examples:");
    size_t skip = 9;
    if (at == std::string::npos) at = lines[i].find("Example:"), skip = 8;
    if (at == std::string::npos) continue;
    // "Examples: attnlab a; attnlab b" on the line itself.
    std::string rest = trim(lines[i].substr(at + skip));
    for (size_t from = 0; !rest.empty() && from < rest.size();) {
      size_t semi = rest.find("; ", from);
      std::string part = trim(rest.substr(from, semi == std::string::npos ? std::string::npos : semi - from));
      // A list that goes on below ends its line with "; ": the separator is not part of the command.
      while (!part.empty() && part.back() == ';') part = trim(part.substr(0, part.size() - 1));
      if (is_command_start(part)) out.push_back({name, squeeze_blanks(strip_shell_comment(part))});
      if (semi == std::string::npos) break;
      from = semi + 2;
    }
    // The indented command lines below it.
    for (size_t j = i + 1; j < lines.size(); ++j) {
      const std::string t = trim(lines[j]);
      if (t.empty() || !starts_with(lines[j], " ") || !is_command_start(t)) break;
      out.push_back({name, joined(lines, j, [](const std::string& l) { return strip_shell_comment(l); })});
      i = j;
    }
  }
  return out;
}

inline std::vector<std::string> help_subcommands(const std::string& help) {
  std::vector<std::string> out;
  const std::vector<std::string> lines = lines_of(help);
  bool in = false;
  for (const std::string& l : lines) {
    if (trim(l) == "SUBCOMMANDS:" || trim(l) == "Subcommands:") {
      in = true;
      continue;
    }
    if (!in) continue;
    if (trim(l).empty()) break;
    if (!starts_with(l, "  ") || starts_with(l, "    ")) continue;  // wrapped descriptions are indented further
    std::istringstream w(l);
    std::string first;
    w >> first;
    if (!first.empty()) out.push_back(first);
  }
  return out;
}

}  // namespace attnlab::test::doc
