#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace attnlab::train {

namespace fs = std::filesystem;

nlohmann::ordered_json TrainerState::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "attnlab-trainer-state";
  j["version"] = 1;
  j["step"] = step;
  j["total_steps"] = total_steps;
  j["tokens"] = tokens;
  j["skipped_steps"] = skipped_steps;
  j["consecutive_bad"] = consecutive_bad;
  j["elapsed_s"] = elapsed_s;
  // 64-bit counters as strings: JSON readers elsewhere may hold numbers as doubles.
  j["rng_seed"] = std::to_string(rng_seed);
  j["rng_offset"] = std::to_string(rng_offset);
  j["loader"] = loader_state.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(loader_state);
  j["best_val_loss"] = best_val_loss ? nlohmann::ordered_json(*best_val_loss) : nlohmann::ordered_json();
  j["best_step"] = best_step ? nlohmann::ordered_json(*best_step) : nlohmann::ordered_json();
  j["last_val_loss"] = last_val_loss ? nlohmann::ordered_json(*last_val_loss) : nlohmann::ordered_json();
  j["log_loss_sum"] = log_loss_sum;
  j["log_loss_count"] = log_loss_count;
  j["world_size"] = world_size;
  j["config_hash"] = config_hash;
  j["config_yaml"] = config_yaml;
  return j;
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  CHECK(j.is_object() && j.value("format", "") == "attnlab-trainer-state", source,
        ": not an attnlab trainer state (no \"format\": \"attnlab-trainer-state\")");
  TrainerState s;
  auto need = [&](const char* key) -> const nlohmann::json& {
    CHECK(j.contains(key), source, ": key '", key, "' is missing");
    return j.at(key);
  };
  try {
    s.step = need("step").get<int64_t>();
    s.total_steps = need("total_steps").get<int64_t>();
    s.tokens = need("tokens").get<int64_t>();
    s.skipped_steps = need("skipped_steps").get<int64_t>();
    s.consecutive_bad = need("consecutive_bad").get<int64_t>();
    s.elapsed_s = need("elapsed_s").get<double>();
    s.rng_seed = std::stoull(need("rng_seed").get<std::string>());
    s.rng_offset = std::stoull(need("rng_offset").get<std::string>());
    if (!need("loader").is_null()) s.loader_state = j.at("loader").dump();
    if (!need("best_val_loss").is_null()) s.best_val_loss = j.at("best_val_loss").get<double>();
    if (!need("best_step").is_null()) s.best_step = j.at("best_step").get<int64_t>();
    if (!need("last_val_loss").is_null()) s.last_val_loss = j.at("last_val_loss").get<double>();
    s.log_loss_sum = need("log_loss_sum").get<double>();
    s.log_loss_count = need("log_loss_count").get<int64_t>();
    s.world_size = need("world_size").get<int>();
    s.config_hash = need("config_hash").get<std::string>();
    s.config_yaml = need("config_yaml").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    FAIL_WITH(source, ": a value has the wrong type (", e.what(), ")");
  } catch (const std::logic_error& e) {
    FAIL_WITH(source, ": an RNG counter is not a decimal number (", e.what(), ")");
  }
  return s;
}

std::string checkpoint_root(const std::string& run_dir) { return (fs::path(run_dir) / "checkpoints").string(); }

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", (long long)step);
  return buf;
}

namespace {

// The step of a folder named step_<digits>, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(5));
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  CHECK(fd >= 0, "checkpoint: cannot open '", path, "' to fsync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  CHECK(rc == 0, "checkpoint: fsync '", path, "' failed: ", std::strerror(err), " (check free disk space)");
}

struct StepFolder {
  int64_t step;
  std::string path;
  bool complete;
};

std::vector<StepFolder> step_folders(const std::string& root) {
  std::vector<StepFolder> v;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return v;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const int64_t step = step_of(e.path().filename().string());
    if (step >= 0 && e.is_directory()) v.push_back({step, e.path().string(), is_complete_checkpoint(e.path().string())});
  }
  std::sort(v.begin(), v.end(), [](const StepFolder& a, const StepFolder& b) { return a.step < b.step; });
  return v;
}

}  // namespace

bool is_complete_checkpoint(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kDoneMarker, ec);
}

std::vector<CheckpointRef> list_checkpoints(const std::string& root) {
  std::vector<CheckpointRef> out;
  for (const StepFolder& f : step_folders(root))
    if (f.complete) out.push_back({f.step, f.path});
  return out;
}

std::vector<CheckpointRef> incomplete_checkpoints(const std::string& root) {
  std::vector<CheckpointRef> out;
  for (const StepFolder& f : step_folders(root))
    if (!f.complete) out.push_back({f.step, f.path});
  return out;
}

std::optional<CheckpointRef> latest_checkpoint(const std::string& root) {
  std::vector<CheckpointRef> all = list_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::vector<std::string> prune_checkpoints(const std::string& root, int64_t keep_last) {
  std::vector<std::string> removed;
  const std::vector<StepFolder> folders = step_folders(root);
  int64_t newest_complete = -1, complete = 0;
  for (const StepFolder& f : folders)
    if (f.complete) {
      newest_complete = f.step;
      ++complete;
    }
  int64_t to_drop = keep_last > 0 ? std::max<int64_t>(0, complete - keep_last) : 0;
  std::error_code ec;
  for (const StepFolder& f : folders) {
    bool drop = false;
    if (f.complete && to_drop > 0) {
      drop = true;
      --to_drop;
    } else if (!f.complete && f.step < newest_complete) {
      drop = true;  // a save that died before DONE; a newer complete one supersedes it
    }
    if (drop) {
      fs::remove_all(f.path, ec);
      removed.push_back(f.path);
    }
  }
  // Temporary folders of writers that died (this process has none open while pruning).
  if (fs::is_directory(root, ec))
    for (const auto& e : fs::directory_iterator(root, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0) {
        fs::remove_all(e.path(), ec);
        removed.push_back(e.path().string());
      }
    }
  return removed;
}

CheckpointWriter::CheckpointWriter(const std::string& root, const std::string& name) : root_(root), name_(name) {
  std::error_code ec;
  fs::create_directories(root, ec);
  CHECK(!ec && fs::is_directory(root), "checkpoint: cannot create '", root, "': ", ec.message());
  tmp_ = (fs::path(root) / (".tmp-" + name + "-" + std::to_string(::getpid()))).string();
  fs::remove_all(tmp_, ec);
  fs::create_directory(tmp_, ec);
  CHECK(!ec, "checkpoint: cannot create '", tmp_, "': ", ec.message());
}

CheckpointWriter::~CheckpointWriter() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

std::string CheckpointWriter::commit() {
  CHECK(!committed_, "checkpoint '", name_, "' committed twice");
  for (const auto& e : fs::directory_iterator(tmp_))
    if (e.is_regular_file()) fsync_path(e.path().string(), false);
  fsync_path(tmp_, true);
  const fs::path final_path = fs::path(root_) / name_;
  std::error_code ec;
  if (fs::exists(final_path)) {
    // rename(2) cannot replace a non-empty folder: move the old one aside first, delete it after.
    const fs::path old = fs::path(root_) / (".old-" + name_ + "-" + std::to_string(::getpid()));
    fs::remove_all(old, ec);
    fs::rename(final_path, old, ec);
    CHECK(!ec, "checkpoint: cannot move the old '", final_path.string(), "' aside: ", ec.message());
    fs::rename(tmp_, final_path, ec);
    CHECK(!ec, "checkpoint: cannot rename '", tmp_, "' to '", final_path.string(), "': ", ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, final_path, ec);
    CHECK(!ec, "checkpoint: cannot rename '", tmp_, "' to '", final_path.string(), "': ", ec.message());
  }
  fsync_path(root_, true);
  write_file_synced((final_path / kDoneMarker).string(), "complete\n");
  fsync_path(final_path.string(), true);
  committed_ = true;
  return final_path.string();
}

void write_file_synced(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0, "cannot create '", path, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = errno;
      ::close(fd);
      FAIL_WITH("writing '", path, "': ", std::strerror(err), " (check free disk space)");
    }
    done += size_t(w);
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  CHECK(rc == 0, "fsync '", path, "': ", std::strerror(err));
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CHECK(in.good(), "cannot read '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace attnlab::train
