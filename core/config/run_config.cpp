#include "core/config/run_config.h"

#include <cctype>

#include "core/config/experiment.h"

namespace attnlab::config {

void declare_task_field(FieldBinder<ExperimentConfig>& f) {
  f.enum_field("task", &ExperimentConfig::task,
               {{"pretrain", Task::pretrain}, {"sft", Task::sft}, {"kv_only", Task::kv_only}},
               "what the run does: pretrain on a corpus, sft on records, or kv_only (train k_proj/v_proj only)")
      .required();
}

void declare_fields(FieldBinder<RunConfig>& f) {
  f.field("name", &RunConfig::name, "run name; the run folder is <out_dir>/<name>")
      .required()
      .check("letters, digits and . _ -", [](const Value& v) -> std::string {
        for (char c : std::get<std::string>(v))
          if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
            return "a run name may hold only letters, digits and . _ - (it names a folder)";
        return "";
      });
  f.field("out_dir", &RunConfig::out_dir, "folder that holds run folders").def("runs").as_path();
  f.field("seed", &RunConfig::seed, "seed for initialisation, data order and dropout").def(1234).at_least(0);
  f.enum_field("device", &RunConfig::device,
               {{"auto", DeviceChoice::auto_select}, {"cpu", DeviceChoice::cpu}, {"cuda", DeviceChoice::cuda}},
               "where to run: auto picks cuda when a usable GPU is present, else cpu")
      .def("auto");
  f.enum_field("dtype", &RunConfig::dtype, {{"f32", DType::f32}, {"bf16", DType::bf16}},
               "compute dtype of weights and activations (master weights stay f32); bf16 needs cuda")
      .def("f32");
}

}  // namespace attnlab::config
