#include "core/config/registry.h"

#include <set>

#include "core/config/experiment.h"
#include "core/config/suggest.h"

namespace attnlab::config {

const std::vector<SectionInfo>& config_sections() {
  static const std::vector<SectionInfo> sections = {
      {"run", "what the run is called, where it writes, its seed, device and dtype"},
      {"model", "where the weights come from, architecture overrides, the attention variant"},
      {"data", "corpus or SFT records, tokenizer, sequence length, loss mask, validation split"},
      {"train", "batching, how long to train, which parameters train"},
      {"optim", "optimizer, weight decay, gradient clipping"},
      {"schedule", "learning-rate warmup and decay"},
      {"eval", "validation during training"},
      {"checkpoint", "saving and resuming"},
      {"distributed", "data parallelism across ranks"},
      {"log", "metrics file and progress line"},
      {"profile", "profiler capture window and NVTX ranges"},
      {"analysis", "the analysis fields of one study; analysis.study selects the study"},
  };
  return sections;
}

std::string parent_path(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? std::string() : path.substr(0, dot);
}

std::string leaf_name(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

namespace {

// A section's fields must be contiguous, or the printed YAML would repeat a section key.
void check_contiguous(const std::vector<const FieldSpec*>& fields) {
  std::set<std::string> closed;
  std::vector<std::string> open;  // the current chain of prefixes
  for (const FieldSpec* f : fields) {
    std::vector<std::string> prefixes;
    for (std::string p = parent_path(f->path); !p.empty(); p = parent_path(p)) prefixes.insert(prefixes.begin(), p);
    size_t common = 0;
    while (common < open.size() && common < prefixes.size() && open[common] == prefixes[common]) ++common;
    for (size_t i = common; i < open.size(); ++i) closed.insert(open[i]);
    for (size_t i = common; i < prefixes.size(); ++i)
      CHECK(!closed.count(prefixes[i]), "config fields of '", prefixes[i], "' are not declared together (at ", f->path, ")");
    open = prefixes;
    CHECK(!closed.count(f->path), "config field '", f->path, "' is also a section");
  }
}

std::deque<FieldSpec> build_core_fields() {
  std::deque<FieldSpec> out;
  FieldBinder<ExperimentConfig> top(out, "", [](void* t) { return static_cast<ExperimentConfig*>(t); });
  declare_task_field(top);
  { auto b = top.nested("run", &ExperimentConfig::run); declare_fields(b); }
  { auto b = top.nested("model", &ExperimentConfig::model); declare_fields(b); }
  { auto b = top.nested("data", &ExperimentConfig::data); declare_fields(b); }
  { auto b = top.nested("train", &ExperimentConfig::train); declare_fields(b); }
  { auto b = top.nested("optim", &ExperimentConfig::optim); declare_fields(b); }
  { auto b = top.nested("schedule", &ExperimentConfig::schedule); declare_fields(b); }
  { auto b = top.nested("eval", &ExperimentConfig::eval); declare_fields(b); }
  { auto b = top.nested("checkpoint", &ExperimentConfig::checkpoint); declare_fields(b); }
  { auto b = top.nested("distributed", &ExperimentConfig::distributed); declare_fields(b); }
  { auto b = top.nested("log", &ExperimentConfig::log); declare_fields(b); }
  { auto b = top.nested("profile", &ExperimentConfig::profile); declare_fields(b); }

  std::set<std::string> paths;
  for (const FieldSpec& f : out) {
    check_declaration(f);
    CHECK(paths.insert(f.path).second, "config field '", f.path, "' is declared twice");
    bool known_section = parent_path(f.path).empty();
    for (const auto& s : config_sections()) known_section = known_section || f.path.rfind(s.name + ".", 0) == 0;
    CHECK(known_section, "config field '", f.path, "' is outside the known sections");
  }
  return out;
}

}  // namespace

const std::deque<FieldSpec>& core_fields() {
  static const std::deque<FieldSpec> fields = build_core_fields();
  return fields;
}

Schema::Schema(const StudySchema* study) : study_(study) {
  for (const FieldSpec& f : core_fields()) fields_.push_back(&f);

  std::vector<std::string> names = {kNoStudy};
  for (const auto& s : registered_studies()) names.push_back(s->name);
  FieldBinder<ExperimentConfig> top(own_, "", [](void* t) { return static_cast<ExperimentConfig*>(t); });
  FieldBinder<AnalysisConfig> a = top.nested("analysis", &ExperimentConfig::analysis);
  FieldSpec& study_field =
      a.field("study", &AnalysisConfig::study, "the study whose analysis fields this section holds; none: no analysis")
          .def(std::string(kNoStudy));
  study_field.type = FieldType::enumeration;
  study_field.choices = names;
  check_declaration(study_field);
  fields_.push_back(&study_field);

  if (study_)
    for (const FieldSpec& f : study_->fields) fields_.push_back(&f);
  check_contiguous(fields_);
}

const FieldSpec* Schema::find(const std::string& path) const {
  for (const FieldSpec* f : fields_)
    if (f->path == path) return f;
  return nullptr;
}

bool Schema::is_section(const std::string& path) const {
  if (path == "analysis") return true;  // present even when no study adds fields to it
  for (const FieldSpec* f : fields_)
    if (f->path.size() > path.size() && f->path.compare(0, path.size(), path) == 0 && f->path[path.size()] == '.')
      return true;
  return false;
}

std::vector<std::string> Schema::child_keys(const std::string& prefix) const {
  std::vector<std::string> keys;
  for (const FieldSpec* f : fields_) {
    std::string rest;
    if (prefix.empty()) rest = f->path;
    else if (f->path.rfind(prefix + ".", 0) == 0) rest = f->path.substr(prefix.size() + 1);
    else continue;
    std::string key = rest.substr(0, rest.find('.'));
    bool seen = false;
    for (const auto& k : keys) seen = seen || k == key;
    if (!seen) keys.push_back(key);
  }
  return keys;
}

std::vector<std::string> Schema::all_paths() const {
  std::vector<std::string> paths;
  std::set<std::string> seen;
  for (const FieldSpec* f : fields_) {
    for (std::string p = parent_path(f->path); !p.empty(); p = parent_path(p))
      if (seen.insert(p).second) paths.push_back(p);
    if (seen.insert(f->path).second) paths.push_back(f->path);
  }
  return paths;
}

}  // namespace attnlab::config
