#include "studies/study.h"

#include "core/config/analysis_config.h"

namespace attnlab::studies {

void install_study(std::shared_ptr<const Study> study) {
  const std::string name = study->name();
  if (!config::find_study(name)) {
    FieldTable table = study->analysis_fields();
    for (const config::FieldSpec& f : table.fields)
      CHECK(f.path.rfind("analysis.", 0) == 0, "study '", name, "': field '", f.path, "' is not under analysis.");
    auto schema = std::make_unique<config::StudySchema>();
    schema->name = name;
    schema->doc = study->doc();
    schema->fields = std::move(table.fields);
    schema->make_default = std::move(table.make_default);
    config::add_study(std::move(schema));
  }
  if (!train::has_study_hooks(name))
    train::add_study_hooks(name, [study](const train::StudyRun& run) { return study->start_training(run); });
}

}  // namespace attnlab::studies
