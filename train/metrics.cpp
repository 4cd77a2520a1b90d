#include "train/metrics.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace attnlab::train {

namespace fs = std::filesystem;

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::open(const std::string& path, int64_t resumed_step) {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  path_ = path;
  std::string kept;
  if (resumed_step >= 0 && fs::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      // A torn last line (the interrupted session died mid-write) is dropped with the rest.
      if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
      if (j["step"].get<int64_t>() <= resumed_step) kept += line + "\n";
    }
  }
  file_ = std::fopen(path.c_str(), "wb");
  CHECK(file_, "cannot write the metrics file '", path, "': ", std::strerror(errno));
  if (!kept.empty()) std::fwrite(kept.data(), 1, kept.size(), file_);
  std::fflush(file_);
}

void MetricsLog::write(const nlohmann::ordered_json& record) {
  CHECK(file_, "metrics: write before open");
  const std::string line = record.dump() + "\n";
  CHECK(std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0,
        "writing the metrics file '", path_, "': ", std::strerror(errno), " (check free disk space)");
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CHECK(in.good(), "cannot read the metrics file '", path, "'");
  std::vector<nlohmann::json> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    CHECK(!j.is_discarded() && j.is_object(), path, ":", n, ": not a JSON object");
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace attnlab::train
