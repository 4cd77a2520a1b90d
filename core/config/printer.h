#pragma once
// Text forms of the config: the resolved YAML (saved into run folders, printed by
// `attnlab validate`), its hash (compared by ranks at rendezvous), and the field reference
// (`attnlab config fields`).
#include <cstdint>
#include <string>

#include "core/config/field.h"
#include "core/config/resolved.h"

namespace attnlab::config {

// YAML of every field in registry order, each line commented with its source (default,
// file, override). When the experiment names base files, a file value's comment also says which
// file and line it came from ("file standard.yaml:41:5"). Deterministic; reloading it gives the
// same values.
std::string print_resolved(const ResolvedConfig& resolved);

// FNV-1a 64 over "path=value" lines of every field (values in the printer's canonical
// form). Sources do not count: two ranks that reach the same values by different routes agree.
uint64_t config_hash(const ResolvedConfig& resolved);
std::string config_hash_hex(const ResolvedConfig& resolved);  // 16 lowercase hex digits

// The field reference: every field's path, type, default, range or choices, and doc, by
// section, then the cross-field rules. `section` "" lists all; otherwise one section (or
// "task"). Throws attnlab::Error for an unknown section.
std::string print_field_reference(const std::string& section = "");

// A field's constraints in words ("one of question | last; each in [0, 1)"), "" when it has
// none: the field reference and the study commands' --help (studies/study_command.h) use it.
std::string describe_constraints(const FieldSpec& f);

}  // namespace attnlab::config
