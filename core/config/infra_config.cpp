#include "core/config/infra_config.h"

namespace attnlab::config {

void declare_fields(FieldBinder<DistributedConfig>& f) {
  f.enum_field("backend", &DistributedConfig::backend,
               {{"auto", DistBackend::auto_select}, {"nccl", DistBackend::nccl}, {"mpi", DistBackend::mpi},
                {"none", DistBackend::none}},
               "collectives: nccl (GPUs), mpi (CPU ranks), none (one process); auto picks from device and launcher")
      .def("auto");
  f.field("zero1", &DistributedConfig::zero1, "shard optimizer state across ranks (ZeRO-1)").def(false);
  f.field("bucket_mb", &DistributedConfig::bucket_mb, "gradient all-reduce bucket size in MiB")
      .def(25.0)
      .range_open_closed(0, 4096);
}

void declare_fields(FieldBinder<ProfileConfig>& f) {
  f.field("steps", &ProfileConfig::steps,
          "[start, end) optimizer steps bracketed by cudaProfilerStart/Stop (nsys/ncu capture range)")
      .fixed_length(2)
      .at_least(0);
  f.field("nvtx", &ProfileConfig::nvtx, "emit NVTX ranges for every layer and op launch").def(false);
}

}  // namespace attnlab::config
