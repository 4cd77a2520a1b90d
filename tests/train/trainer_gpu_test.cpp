// The trainer on the GPU: f32 steps against the CPU, bf16 with f32 master weights, bitwise resume
// on the same GPU, KV-only leaving every other parameter untouched, and the NaN/Inf skip decided
// on the device.
#include <cmath>

#include <cstdlib>
#include <cstring>

#include "dist/rendezvous.h"
#include "core/io/safetensors.h"
#include "train/metrics.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

std::vector<double> logged_losses(const std::string& run_dir) {
  std::vector<double> v;
  for (const nlohmann::json& j : train::read_metrics(run_dir + "/metrics.jsonl"))
    if (j["kind"] == "train") v.push_back(j["loss"].get<double>());
  return v;
}

std::string checkpoint_path(const std::string& run_dir, int64_t step, const char* file) {
  return run_dir + "/checkpoints/" + train::checkpoint_name(step) + "/" + file;
}

TEST(TrainerGpu, F32StepsMatchTheCpu) {
  ATTNLAB_REQUIRE_GPU();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  const std::vector<std::string> common = {"train.steps=5", "train.grad_accum=2", "log.every_steps=1"};
  auto cpu_cfg = common, gpu_cfg = common;
  cpu_cfg.push_back("run.device=cpu");
  gpu_cfg.push_back("run.device=cuda");
  train::Trainer on_cpu(tiny_experiment(d.path, "cpu", cpu_cfg), quiet_options(data));
  on_cpu.run();
  train::Trainer on_gpu(tiny_experiment(d.path, "gpu", gpu_cfg), quiet_options(data));
  ASSERT_EQ(on_gpu.ctx().device, Device::cuda);
  on_gpu.run();
  const auto lc = logged_losses(d.path + "/cpu"), lg = logged_losses(d.path + "/gpu");
  ASSERT_EQ(lc.size(), 5u);
  ASSERT_EQ(lg.size(), 5u);
  EXPECT_NEAR(lg[0], lc[0], 1e-5 * std::abs(lc[0])) << "first step (same weights)";
  for (size_t i = 1; i < lc.size(); ++i) EXPECT_NEAR(lg[i], lc[i], 5e-4 * std::abs(lc[i])) << "step " << i + 1;
  // AdamW divides by sqrt(v): an element whose gradient is ~0 may step either way by up to lr, so
  // the weights are compared as one vector, and element-wise only against that bound.
  std::vector<double> all_c, all_g;
  const double lr = 3e-3, steps = 5;
  for (const auto& [name, v] : param_values(on_cpu.ctx(), on_cpu.model())) {
    const std::vector<double> g = to_host_f64(on_gpu.ctx(), on_gpu.model().params().at(name).value);
    EXPECT_LE(max_abs_diff(g, v), 2 * lr * steps) << name;
    all_c.insert(all_c.end(), v.begin(), v.end());
    all_g.insert(all_g.end(), g.begin(), g.end());
  }
  EXPECT_LT(rel_err(all_g, all_c), 1e-2);
}

TEST(TrainerGpu, Bf16KeepsF32MastersAndItsWorkingCopyIsTheirRounding) {
  ATTNLAB_REQUIRE_GPU();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  const std::vector<std::string> common = {"train.steps=6", "log.every_steps=1", "optim.lr=1e-2"};
  auto bf16_cfg = common, f32_cfg = common;
  bf16_cfg.insert(bf16_cfg.end(), {"run.device=cuda", "run.dtype=bf16"});
  f32_cfg.push_back("run.device=cpu");
  {
    train::Trainer ref(tiny_experiment(d.path, "f32", f32_cfg), quiet_options(data));
    ref.run();
  }
  train::Trainer t(tiny_experiment(d.path, "bf16", bf16_cfg), quiet_options(data));
  ASSERT_EQ(t.model().dtype(), DType::bf16);
  t.run();
  const auto losses = logged_losses(d.path + "/bf16"), ref_losses = logged_losses(d.path + "/f32");
  ASSERT_EQ(losses.size(), 6u);
  for (size_t i = 0; i < losses.size(); ++i) EXPECT_NEAR(losses[i], ref_losses[i], 5e-2 * ref_losses[i]) << "step " << i + 1;
  EXPECT_LT((losses[3] + losses[4] + losses[5]) / 3, losses[0]) << "bf16 training did not lower the loss";
  SafetensorsFile opt = SafetensorsFile::open(checkpoint_path(d.path + "/bf16", 6, "optimizer.safetensors"));
  for (const Param& p : t.model().params()) {
    ASSERT_TRUE(opt.has("master." + p.name)) << p.name;
    EXPECT_EQ(opt.info("master." + p.name).dtype, StDType::F32);
    const std::vector<double> master = read_tensor_f64(opt, "master." + p.name);
    // The working copy's vocabulary padding rows (Param::pad_rows) are not in the checkpoint.
    EXPECT_EQ(to_host_f64(t.ctx(), p.unpadded(p.value)), round_as(DType::bf16, master)) << p.name;
  }
}

TEST(TrainerGpu, ResumeIsBitwiseOnTheSameGpu) {
  ATTNLAB_REQUIRE_GPU();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  const std::vector<std::string> common = {"train.steps=6", "train.grad_accum=2", "run.device=cuda",
                                           "run.dtype=bf16", "model.arch.embd_pdrop=0.1", "model.arch.resid_pdrop=0.1"};
  {
    train::Trainer straight(tiny_experiment(d.path, "straight", common), quiet_options(data));
    straight.run();
  }
  auto stop = quiet_options(data);
  stop.stop_at_step = 3;
  {
    train::Trainer first(tiny_experiment(d.path, "split", common), stop);
    EXPECT_TRUE(first.run().interrupted);
  }
  train::Trainer second(tiny_experiment(d.path, "split", common), quiet_options(data));
  EXPECT_EQ(second.run().start_step, 3);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(read_text(checkpoint_path(d.path + "/straight", 6, file)), read_text(checkpoint_path(d.path + "/split", 6, file)))
        << file;
}

TEST(TrainerGpu, KvOnlyLeavesEveryOtherParameterUntouched) {
  ATTNLAB_REQUIRE_GPU();
  ScratchDir d;
  write_tiny_qwen(d / "model", ModelArch::qwen2, 32);
  auto data = synthetic_data(d / "shards", 120, 32);
  train::Trainer t(tiny_experiment(d.path, "kv", {"task=kv_only", "train.steps=3", "run.device=cuda", "run.dtype=bf16"},
                                   "model: {from: " + d / "model" + "}\n"),
                   quiet_options(data));
  const auto before = param_values(t.ctx(), t.model());
  t.run();
  const auto after = param_values(t.ctx(), t.model());
  for (const auto& [name, v] : before) {
    const bool kv = name.find(".k_proj.") != std::string::npos || name.find(".v_proj.") != std::string::npos;
    if (kv) EXPECT_NE(v, after.at(name)) << name;
    else EXPECT_EQ(v, after.at(name)) << name;
  }
}

TEST(TrainerGpu, NonFiniteGradientSkipsTheUpdateOnTheDevice) {
  ATTNLAB_REQUIRE_GPU();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 120, 32);
  std::map<int64_t, std::map<std::string, std::vector<double>>> snapshots;
  auto opt = quiet_options(data);
  opt.after_backward = [&](train::Trainer& t, int64_t step) {
    snapshots[step] = param_values(t.ctx(), t.model());
    if (step == 1) {
      Param& p = t.model().params().at("transformer.h.0.attn.c_attn.weight");
      std::vector<double> g = to_host_f64(t.ctx(), p.grad);
      g[11] = INFINITY;
      from_host_f64(t.ctx(), p.grad, g);
    }
  };
  train::Trainer t(tiny_experiment(d.path, "nan", {"train.steps=4", "run.device=cuda", "run.dtype=bf16"}), opt);
  const train::TrainResult r = t.run();
  EXPECT_EQ(r.skipped_steps, 1);
  EXPECT_EQ(snapshots.at(1), snapshots.at(2));
  EXPECT_NE(snapshots.at(2), snapshots.at(3));
}


// World size 1 over NCCL (the launcher's variables say rank 0 of 1, distributed.backend nccl)
// runs the data-parallel code path — bucketed collectives on NCCL's stream, ZeRO-1 shares, the
// all-gather — and must give the single-process run's weights and optimizer state bit for bit on
// the same GPU. Checked in two links, so a failure says which one broke: NCCL + ZeRO-1 against
// the single-process communicator + ZeRO-1 (the NCCL path), then that against no ZeRO-1 (the
// sharded optimizer; with clipping on, the global norm must have the same bits too).
TEST(TrainerGpu, NcclWorldOfOneWithZero1MatchesTheSingleProcessRun) {
  ATTNLAB_REQUIRE_GPU();
#if !ATTNLAB_WITH_NCCL
  GTEST_SKIP() << "attnlab was built without NCCL";
#endif
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  const std::vector<std::string> common = {"train.steps=4", "run.device=cuda", "run.dtype=bf16", "optim.grad_clip=0.5",
                                           "distributed.bucket_mb=0.01", "checkpoint.every_steps=2"};
  auto run = [&](const std::string& name, std::vector<std::string> extra) {
    auto cfg = common;
    cfg.insert(cfg.end(), extra.begin(), extra.end());
    train::Trainer t(tiny_experiment(d.path, name, cfg), quiet_options(data));
    t.run();
    return param_values(t.ctx(), t.model());
  };
  const auto plain = run("single", {});
  const auto zero1 = run("zero1", {"distributed.zero1=true"});
  const std::string port = std::to_string(dist::pick_free_loopback_port());
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  setenv("LOCAL_RANK", "0", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", port.c_str(), 1);
  const auto nccl = run("nccl", {"distributed.backend=nccl", "distributed.zero1=true"});
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);

  auto same_state = [&](const std::string& x, const std::string& y) {
    SafetensorsFile a = SafetensorsFile::open(checkpoint_path(d.path + "/" + x, 4, "optimizer.safetensors"));
    SafetensorsFile b = SafetensorsFile::open(checkpoint_path(d.path + "/" + y, 4, "optimizer.safetensors"));
    ASSERT_EQ(a.names(), b.names());
    for (const std::string& n : a.names())
      EXPECT_EQ(0, std::memcmp(a.raw(n), b.raw(n), a.info(n).bytes())) << x << " vs " << y << ": " << n;
  };
  for (const auto& [name, v] : nccl) EXPECT_TRUE(v == zero1.at(name)) << "NCCL vs single communicator (both ZeRO-1): " << name;
  same_state("nccl", "zero1");
  for (const auto& [name, v] : zero1) EXPECT_TRUE(v == plain.at(name)) << "ZeRO-1 vs plain (single communicator): " << name;
  same_state("zero1", "single");
}

TEST(TrainerGpu, ScratchDecodersTrainOnTheGpuLikeOnTheCpu) {
  ATTNLAB_REQUIRE_GPU();
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 160, 32);
  for (const char* variant : {"standard", "differential"}) {
    // Dropout off so the two devices see the same function (their Philox streams agree, but the
    // first-step comparison should not depend on that).
    const std::string model = tiny_decoder_yaml(variant);
    const std::vector<std::string> common = {"train.steps=4", "log.every_steps=1", "model.arch.dropout=0.0"};
    auto cpu_cfg = common, gpu_cfg = common, bf16_cfg = common;
    cpu_cfg.push_back("run.device=cpu");
    gpu_cfg.push_back("run.device=cuda");
    bf16_cfg.push_back("run.device=cuda");
    bf16_cfg.push_back("run.dtype=bf16");
    const std::string v = variant;
    train::Trainer on_cpu(tiny_experiment(d.path, "cpu-" + v, cpu_cfg, model), quiet_options(data));
    on_cpu.run();
    train::Trainer on_gpu(tiny_experiment(d.path, "gpu-" + v, gpu_cfg, model), quiet_options(data));
    ASSERT_EQ(on_gpu.ctx().device, Device::cuda);
    on_gpu.run();
    const auto lc = logged_losses(d.path + "/cpu-" + v), lg = logged_losses(d.path + "/gpu-" + v);
    ASSERT_EQ(lc.size(), 4u);
    ASSERT_EQ(lg.size(), 4u);
    for (size_t i = 0; i < lc.size(); ++i) EXPECT_NEAR(lg[i], lc[i], 1e-3 * std::abs(lc[i])) << v << " step " << i + 1;
    // bf16 with f32 masters: the same initial weights (rounded), so the first loss is close.
    train::Trainer on_bf16(tiny_experiment(d.path, "bf16-" + v, bf16_cfg, model), quiet_options(data));
    ASSERT_EQ(on_bf16.model().dtype(), DType::bf16);
    on_bf16.run();
    const auto lb = logged_losses(d.path + "/bf16-" + v);
    ASSERT_EQ(lb.size(), 4u);
    EXPECT_NEAR(lb[0], lc[0], 3e-2 * std::abs(lc[0])) << v;
  }
}

}  // namespace
}  // namespace attnlab::test
