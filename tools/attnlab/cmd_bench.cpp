// attnlab bench [op] [sizes...]: verify against the CPU, then time (see tools/bench/bench.h).
#include <cstdio>
#include <fstream>

#include "core/log.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"
#include "tools/bench/bench.h"

namespace attnlab::cli {
namespace {

struct BenchOptions {
  std::string op = "all";
  std::vector<int64_t> sizes;
  bool list = false;
  bool cpu = false;
  int repeats = 25;
  std::string csv;
  std::string impl = "materialized";
};

void write_csv(const std::string& path, const std::vector<bench::Row>& rows, const std::string& device) {
  std::ofstream f(path);
  CHECK(f.good(), "cannot write '", path, "'; check that its folder exists and is writable");
  f << "op,shape,us,tflops,bytes_gbs,rel_err,device,note\n";
  for (auto& r : rows)
    f << r.op << ",\"" << r.shape << "\"," << r.us << ","
      << (r.flops > 0 ? r.flops / (r.us * 1e-6) / 1e12 : 0) << ","
      << (r.bytes > 0 ? r.bytes / (r.us * 1e-6) / 1e9 : 0) << "," << r.rel_err << ",\"" << device
      << "\",\"" << r.note << "\"\n";
}

void run_bench(const BenchOptions& o) {
  auto& reg = bench::registry();
  CudaStatus st = cuda_status();
  if (o.list) {
    std::printf("Entries (`attnlab bench NAME [sizes]`; here: %s):\n",
                st.usable ? "a usable GPU, so GPU timings (--cpu times the CPU backend)"
                          : ("no usable GPU (" + st.reason + "), so CPU timings").c_str());
    for (auto& e : reg)
      std::printf("%-16s %-12s sizes: %s\n", e.name.c_str(), e.needs_gpu ? "[needs GPU]" : "[CPU, GPU]",
                  e.help.c_str());
    return;
  }
  Ctx ctx = (st.usable && !o.cpu) ? Ctx::make_cuda(0, 7) : Ctx::make_cpu(7);
  std::string device = ctx.is_cuda() ? cuda_device_info(0).name : "cpu";
  if (!ctx.is_cuda())
    log_info("bench: timing the CPU backend (", o.cpu ? "--cpu given" : st.reason,
             "); GPU figures need a CUDA device");
  else
    log_info("bench: ", device);
  bench::Runner runner(ctx, 5, o.repeats);
  runner.attention_impl = o.impl;
  bench::print_header(ctx.is_cuda());
  bool found = false;
  for (auto& e : reg) {
    if (o.op != "all" && o.op != e.name) continue;
    found = true;
    if (e.needs_gpu && !ctx.is_cuda()) {
      if (o.op == "all") continue;  // `all` on the CPU runs what the CPU can
      FAIL_WITH("bench ", e.name, " needs a GPU; this run uses the CPU backend (", o.cpu ? "--cpu given" : st.reason,
                "). `attnlab bench --list` shows which entries run on the CPU");
    }
    if (!o.sizes.empty()) e.run(runner, o.sizes);
    else
      for (auto& s : !ctx.is_cuda() && !e.cpu_default_sizes.empty() ? e.cpu_default_sizes : e.default_sizes)
        e.run(runner, s);
  }
  if (!found) {
    std::string names;
    for (auto& e : reg) names += " " + e.name;
    FAIL_WITH("no benchmark named '", o.op, "'; available:", names);
  }
  if (!o.csv.empty()) write_csv(o.csv, runner.rows(), device);
  if (!runner.ok()) exit_with(kExitFailure);  // a verification failed
}

void setup(CLI::App& root) {
  auto o = std::make_shared<BenchOptions>();
  auto* c = root.add_subcommand(
      "bench",
      "Verify an op against the CPU reference, then time it (CUDA events, warm-up, median,\n"
      "L2 flushed) and print µs, TFLOP/s or GB/s and the fraction of the H100 ceiling.\n"
      "Without a usable GPU (or with --cpu) the entries run on the CPU backend: verified in f32 against\n"
      "f64, timed with the steady clock, reported as this CPU's GFLOP/s and GB/s.\n"
      "Examples: attnlab bench --list; attnlab bench matmul 4096 4096 4096; attnlab bench all;\n"
      "  attnlab bench attention 64 64 1 1 2 --impl both --repeats 3   # fused vs materialized");
  c->add_option("op", o->op, "Op to run ('all' runs every entry with its default sizes)");
  c->add_option("sizes", o->sizes, "Sizes, as the op's entry in --list describes");
  c->add_flag("--list", o->list, "List the benchmark entries and what their sizes mean");
  c->add_flag("--cpu", o->cpu, "Time the CPU backend even when a GPU is present");
  c->add_option("--repeats", o->repeats, "Timed repeats (the median is reported)")->check(CLI::Range(1, 10000));
  c->add_option("--csv", o->csv, "Also write the rows to this CSV file");
  c->add_option("--impl", o->impl,
                "Attention backend the attention entry times: materialized, fused (flash-style; on the CPU the "
                "tiled reference) or both (fused rows give their time ratio to materialized)")
      ->check(CLI::IsMember({"materialized", "fused", "both"}));
  c->callback([o] { run_bench(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
