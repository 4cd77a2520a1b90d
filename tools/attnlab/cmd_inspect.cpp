// attnlab inspect FILE.safetensors: metadata and every tensor's name, dtype, shape and size.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "core/io/safetensors.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

struct InspectOptions {
  std::string path;
  bool sort_by_name = false;
};

void run_inspect(const InspectOptions& o) {
  // open() validates the whole header; a malformed file throws and main prints the reason.
  SafetensorsFile f = SafetensorsFile::open(o.path);
  std::printf("%s: %llu bytes, header %llu bytes, data from byte %llu, %zu tensors\n", o.path.c_str(),
              (unsigned long long)f.file_size(), (unsigned long long)f.header_size(),
              (unsigned long long)f.data_offset(), f.names().size());
  std::printf("metadata (%zu):\n", f.metadata().size());
  for (const auto& [k, v] : f.metadata()) std::printf("  %s = %s\n", k.c_str(), v.c_str());

  std::vector<std::string> names = f.names();
  if (o.sort_by_name) std::sort(names.begin(), names.end());
  size_t name_w = 4, shape_w = 5;
  for (const auto& n : names) {
    name_w = std::max(name_w, n.size());
    shape_w = std::max(shape_w, f.info(n).shape_str().size());
  }
  std::printf("tensors:\n  %-*s  %-7s  %-*s  %12s  %12s\n", int(name_w), "name", "dtype", int(shape_w), "shape",
              "bytes", "file offset");
  std::map<std::string, std::pair<long long, unsigned long long>> per_dtype;  // elements, bytes
  for (const auto& n : names) {
    const SafetensorInfo& ti = f.info(n);
    std::printf("  %-*s  %-7s  %-*s  %12llu  %12llu\n", int(name_w), n.c_str(), st_dtype_name(ti.dtype), int(shape_w),
                ti.shape_str().c_str(), (unsigned long long)ti.bytes(), (unsigned long long)ti.file_offset);
    auto& acc = per_dtype[st_dtype_name(ti.dtype)];
    acc.first += ti.numel();
    acc.second += ti.bytes();
  }
  for (const auto& [dt, acc] : per_dtype)
    std::printf("total %s: %lld elements, %llu bytes\n", dt.c_str(), acc.first, acc.second);
}

void setup(CLI::App& root) {
  auto opts = std::make_shared<InspectOptions>();
  auto* c = root.add_subcommand("inspect", "Show a .safetensors checkpoint's metadata and tensors (name, dtype, shape, bytes)");
  c->footer(
      "Prints the metadata, then one line per tensor with its name, dtype, shape, size in bytes and\n"
      "where its data starts in the file, then totals per dtype. The whole header is checked first: a\n"
      "malformed or truncated file is refused with the reason and a non-zero exit status.\n"
      "Example: attnlab inspect model.safetensors");
  c->add_option("file", opts->path, "the .safetensors file to read")->required();
  c->add_flag("--sort-by-name", opts->sort_by_name, "list tensors by name instead of by position in the file");
  c->callback([opts] { run_inspect(*opts); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
