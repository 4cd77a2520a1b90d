#pragma once
// The infrastructure sections: `distributed:` (DESIGN.md §9) and `profile:` (§10).
#include <cstdint>
#include <optional>
#include <vector>

#include "core/config/field.h"

namespace attnlab::config {

enum class DistBackend : uint8_t { auto_select, nccl, mpi, none };

struct DistributedConfig {
  DistBackend backend = DistBackend::auto_select;  // auto: nccl on cuda, mpi on cpu, none for one rank
  bool zero1 = false;       // shard optimizer state across ranks
  double bucket_mb = 0;     // gradient all-reduce bucket size
};

struct ProfileConfig {
  std::optional<std::vector<int64_t>> steps;  // [start, end): cudaProfilerStart/Stop window
  bool nvtx = false;

  int64_t start() const { return steps ? (*steps)[0] : -1; }
  int64_t end() const { return steps ? (*steps)[1] : -1; }
};

void declare_fields(FieldBinder<DistributedConfig>& f);
void declare_fields(FieldBinder<ProfileConfig>& f);

}  // namespace attnlab::config
