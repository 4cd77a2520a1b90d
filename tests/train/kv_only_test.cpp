// task kv_only (METHODS §2.6): only the k_proj/v_proj weights (and biases) move, everything else
// stays bit for bit, and a step costs less than a full fine-tuning step (no weight-gradient GEMMs
// for frozen parameters).
#include <cblas.h>
#include <omp.h>
#include <time.h>

#include <algorithm>

#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

bool is_kv(const std::string& name) {
  return name.find(".k_proj.") != std::string::npos || name.find(".v_proj.") != std::string::npos;
}

config::ExperimentConfig kv_experiment(const std::string& out_dir, const std::string& name, const std::string& folder,
                                       const std::string& task, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"task=" + task};
  o.insert(o.end(), extra.begin(), extra.end());
  return tiny_experiment(out_dir, name, o, "model: {from: " + folder + "}\n");
}

TEST(KvOnly, ChangesOnlyTheKeyAndValueProjections) {
  for (ModelArch arch : {ModelArch::qwen3, ModelArch::qwen2}) {
    ScratchDir d;
    write_tiny_qwen(d / "model", arch, 32);
    auto data = synthetic_data(d / "shards", 120, 32);
    train::Trainer t(kv_experiment(d.path, "kv", d / "model", "kv_only", {"train.steps=3"}), quiet_options(data));
    const auto before = param_values(t.ctx(), t.model());
    int64_t kv_numel = 0, kv_tensors = 0;
    for (const Param& p : t.model().params())
      if (is_kv(p.name)) {
        kv_numel += p.numel();
        ++kv_tensors;
      }
    EXPECT_EQ(t.trainable_numel(), kv_numel);
    EXPECT_EQ(kv_tensors, arch == ModelArch::qwen2 ? 8 : 4);  // 2 layers x {k, v} x {weight, bias (qwen2)}
    t.run();
    const auto after = param_values(t.ctx(), t.model());
    for (const auto& [name, values] : before) {
      if (is_kv(name)) EXPECT_NE(values, after.at(name)) << name << " should have trained";
      else EXPECT_EQ(values, after.at(name)) << name << " is frozen but changed";
    }
  }
}

TEST(KvOnly, RefusesGpt2WhoseProjectionsAreFused) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 60, 32);
  // kv_only needs pretrained weights (a config rule): save a tiny GPT-2 first.
  {
    auto cfg = tiny_experiment(d.path, "g", {"train.steps=2"});
    train::Trainer t(cfg, quiet_options(data));
    t.model().save_weights(t.ctx(), d / "gpt2");
  }
  const std::string err = error_of([&] {
    train::Trainer t(kv_experiment(d.path, "kvg", d / "gpt2", "kv_only", {"train.steps=2"}), quiet_options(data));
  });
  EXPECT_NE(err.find("c_attn"), std::string::npos) << err;
}

// CPU seconds of the cheapest step of a run, measured on one thread: OpenMP and OpenBLAS are held
// to one thread each, so every FLOP of the step runs on the calling thread and its CPU clock
// counts the work alone, whatever else the machine is doing (wall time on a shared 2-core CI box
// is mostly other processes). A step is the time between consecutive after_backward calls.
double cheapest_step_cpu_s(const config::ExperimentConfig& cfg, std::shared_ptr<const data::PreparedData> data) {
  auto thread_cpu_s = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  std::vector<double> marks;
  auto opt = quiet_options(std::move(data));
  opt.after_backward = [&](train::Trainer&, int64_t) { marks.push_back(thread_cpu_s()); };
  const int omp_threads = omp_get_max_threads(), blas_threads = openblas_get_num_threads();
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  {
    train::Trainer t(cfg, opt);
    t.run();
  }
  omp_set_num_threads(omp_threads);
  openblas_set_num_threads(blas_threads);
  double best = 1e9;
  for (size_t i = 1; i < marks.size(); ++i) best = std::min(best, marks[i] - marks[i - 1]);
  return best;
}

TEST(KvOnly, StepIsFasterThanFullFineTuning) {
  ScratchDir d;
  // Wide enough that the GEMMs dominate: D = 128, MLP 512, T = 64, B = 4.
  write_tiny_qwen(d / "model", ModelArch::qwen3, 64, 128, 512);
  auto data = synthetic_data(d / "shards", 400, 64);
  const std::vector<std::string> shape = {"train.steps=7", "data.seq_len=64", "train.micro_batch=4", "log.every_steps=100"};
  double kv = 1e9, full = 1e9;
  for (int rep = 0; rep < 2; ++rep) {
    kv = std::min(kv, cheapest_step_cpu_s(kv_experiment(d.path, "kv" + std::to_string(rep), d / "model", "kv_only", shape), data));
    full = std::min(full, cheapest_step_cpu_s(kv_experiment(d.path, "full" + std::to_string(rep), d / "model", "pretrain", shape), data));
  }
  RecordProperty("kv_step_ms", std::to_string(kv * 1e3));
  RecordProperty("full_step_ms", std::to_string(full * 1e3));
  std::printf("kv-only step %.2f ms, full fine-tuning step %.2f ms of one thread's CPU time (ratio %.2f)\n", kv * 1e3, full * 1e3, kv / full);
  EXPECT_LT(kv, full);
}

}  // namespace
}  // namespace attnlab::test
