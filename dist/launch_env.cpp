#include "dist/launch_env.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>

#include "core/error.h"

namespace attnlab::dist {

const char* launch_source_name(LaunchSource s) {
  switch (s) {
    case LaunchSource::single: return "none (single process)";
    case LaunchSource::torch_env: return "RANK/WORLD_SIZE (torchrun or attnlab launch)";
    case LaunchSource::openmpi: return "OpenMPI (mpirun)";
    case LaunchSource::slurm: return "Slurm (srun)";
  }
  return "?";
}

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

// Strict decimal integer: the whole value, within [lo, hi].
int parse_int(const char* name, const std::string& value, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  long v = value.empty() ? 0 : std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno == ERANGE)
    FAIL_WITH("launcher environment: ", name, "='", value, "' is not an integer");
  if (v < lo || v > hi)
    FAIL_WITH("launcher environment: ", name, "=", value, " is out of range [", lo, ", ", hi, "]");
  return int(v);
}

// The rank variables of one launcher.
struct SourceVars {
  LaunchSource source;
  const char* rank;
  const char* world;
  const char* local_rank;
  const char* local_world;  // optional; nullptr when the launcher has none we trust
};

constexpr SourceVars kSources[] = {
    {LaunchSource::torch_env, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {LaunchSource::openmpi, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    // SLURM_NTASKS_PER_NODE can read "2(x3)" on heterogeneous layouts: not used as a local size.
    {LaunchSource::slurm, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr},
};

// Present = its rank variable is set. For torchrun-style variables any of the three counts, so
// that a half-set environment is an error instead of a silent single-process run. SLURM_NTASKS
// alone is set in every allocation (salloc shells, batch scripts) and does not make a task.
bool present(const SourceVars& s) {
  if (env(s.rank)) return true;
  if (s.source == LaunchSource::torch_env) return env(s.world) || env(s.local_rank);
  if (s.source == LaunchSource::openmpi) return bool(env(s.world));
  return false;
}

void read_ranks(const SourceVars& s, LaunchEnv& e) {
  std::string missing, have;
  for (const char* name : {s.rank, s.world, s.local_rank}) {
    auto v = env(name);
    if (!v) missing += missing.empty() ? name : std::string(", ") + name;
    else have += (have.empty() ? "" : ", ") + std::string(name) + "=" + *v;
  }
  if (!missing.empty())
    FAIL_WITH("launcher environment (", launch_source_name(s.source), ") is incomplete: ", have,
              " set but ", missing, " not; a launcher sets all of ", s.rank, ", ", s.world, " and ",
              s.local_rank, " (set them all, or unset them for a single process)");
  e.source = s.source;
  e.rank = parse_int(s.rank, *env(s.rank), 0, INT_MAX);
  e.world_size = parse_int(s.world, *env(s.world), 1, INT_MAX);
  e.local_rank = parse_int(s.local_rank, *env(s.local_rank), 0, INT_MAX);
  if (e.rank >= e.world_size)
    FAIL_WITH("launcher environment: ", s.rank, "=", e.rank, " but ", s.world, "=", e.world_size,
              ": the rank must be below the world size (ranks are 0 .. ", e.world_size - 1, ")");
  if (s.local_world) {
    if (auto lw = env(s.local_world)) {
      e.local_world_size = parse_int(s.local_world, *lw, 1, e.world_size);
      if (e.local_rank >= e.local_world_size)
        FAIL_WITH("launcher environment: ", s.local_rank, "=", e.local_rank, " but ", s.local_world, "=",
                  e.local_world_size, ": the local rank must be below the local world size");
    }
  }
}

void read_master(LaunchEnv& e) {
  std::string addr_from, port_from;
  if (auto a = env("MASTER_ADDR"); a && !a->empty()) {
    e.master_addr = *a;
    addr_from = "MASTER_ADDR";
  } else if (e.source == LaunchSource::slurm) {
    for (const char* list : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"}) {
      if (auto v = env(list); v && !v->empty()) {
        e.master_addr = first_slurm_host(*v);
        addr_from = list;
        break;
      }
    }
    if (e.master_addr.empty()) {
      if (auto ip = env("SLURM_LAUNCH_NODE_IPADDR"); ip && !ip->empty()) {
        e.master_addr = *ip;
        addr_from = "SLURM_LAUNCH_NODE_IPADDR";
      }
    }
  }
  if (auto p = env("MASTER_PORT"); p && !p->empty()) {
    e.master_port = parse_int("MASTER_PORT", *p, 1, 65535);
    port_from = "MASTER_PORT";
  } else if (e.source == LaunchSource::slurm) {
    if (auto job = env("SLURM_JOB_ID"); job && !job->empty()) {
      e.master_port = 20000 + int(parse_int("SLURM_JOB_ID", *job, 0, INT_MAX) % 20000);
      port_from = "20000 + SLURM_JOB_ID % 20000";
    }
  }
  if (!addr_from.empty() || !port_from.empty())
    e.master_from = (addr_from.empty() ? "no address" : addr_from) + ", " +
                    (port_from.empty() ? "no port" : port_from);
}

}  // namespace

std::string first_slurm_host(const std::string& hostlist) {
  // A host ends at the first ',' outside brackets; inside each bracket group keep the first
  // number of the first range (with its zero padding: "[007-010]" -> "007").
  std::string host;
  size_t i = 0;
  while (i < hostlist.size() && hostlist[i] != ',') {
    if (hostlist[i] == '[') {
      size_t close = hostlist.find(']', i);
      if (close == std::string::npos) FAIL_WITH("malformed Slurm host list '", hostlist, "': '[' without ']'");
      size_t j = i + 1;
      while (j < close && hostlist[j] >= '0' && hostlist[j] <= '9') host += hostlist[j++];
      if (j == i + 1) FAIL_WITH("malformed Slurm host list '", hostlist, "': no number after '['");
      i = close + 1;
    } else {
      host += hostlist[i++];
    }
  }
  if (host.empty()) FAIL_WITH("empty Slurm host list '", hostlist, "'");
  return host;
}

LaunchEnv discover_launch_env() {
  LaunchEnv e;
  bool found = false;
  for (const SourceVars& s : kSources) {
    if (!present(s)) continue;
    if (found) {
      e.ignored.push_back(s.source);
      continue;
    }
    read_ranks(s, e);
    found = true;
  }
  read_master(e);
  return e;
}

std::string LaunchEnv::describe() const {
  std::string s = detail::cat("rank ", rank, " of ", world_size, " (local ", local_rank, ")");
  s += source == LaunchSource::single ? ", single process (no launcher variables set)"
                                      : std::string(" from ") + launch_source_name(source);
  if (!master_addr.empty() || master_port)
    s += detail::cat("; rendezvous ", master_addr.empty() ? "?" : master_addr, ":", master_port, " (",
                     master_from, ")");
  if (!ignored.empty()) {
    s += "; also set, ignored:";
    for (size_t i = 0; i < ignored.size(); ++i) s += std::string(i ? ", " : " ") + launch_source_name(ignored[i]);
  }
  return s;
}

void LaunchEnv::require_master() const {
  if (!master_addr.empty() && master_port > 0) return;
  std::string missing = master_addr.empty() ? "MASTER_ADDR" : "";
  if (master_port <= 0) missing += missing.empty() ? "MASTER_PORT" : " and MASTER_PORT";
  FAIL_WITH("the rendezvous address is unknown (", describe(), "): set ", missing,
            " to the host and a free TCP port of rank 0, the same on every rank (`attnlab launch` and "
            "torchrun set them; under Slurm they default to the first node and 20000 + SLURM_JOB_ID % 20000)");
}

}  // namespace attnlab::dist
