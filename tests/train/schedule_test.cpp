// Learning-rate schedules against METHODS P13, written out here from the spec's formulas.
#include <cmath>

#include "train/schedule.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

using config::ScheduleKind;

// METHODS P13 verbatim (HF, decay to 0): warmup lr·t/W, then cosine or linear over N − W.
double p13(ScheduleKind kind, double lr, int64_t W, int64_t N, int64_t t) {
  if (t < W) return lr * double(t) / double(W);
  if (kind == ScheduleKind::cosine) return lr * 0.5 * (1 + std::cos(M_PI * double(t - W) / double(N - W)));
  if (kind == ScheduleKind::linear) return lr * std::max(0.0, double(N - t) / double(N - W));
  return lr;
}

train::LrSchedule make(ScheduleKind kind, double lr, int64_t W, int64_t N, double min_ratio = 0) {
  config::ScheduleConfig s;
  s.kind = kind;
  s.warmup_steps = W;
  s.min_lr_ratio = min_ratio;
  return train::LrSchedule::from_config(s, lr, N);
}

TEST(Schedule, MatchesMethodsP13AtEveryStep) {
  for (ScheduleKind kind : {ScheduleKind::cosine, ScheduleKind::linear, ScheduleKind::constant})
    for (auto [W, N] : {std::pair<int64_t, int64_t>{0, 17}, {5, 37}, {100, 1000}}) {
      const double lr = 3e-4;
      const train::LrSchedule s = make(kind, lr, W, N);
      for (int64_t t = 0; t <= N; ++t)
        EXPECT_NEAR(s.lr_at(t), p13(kind, lr, W, N, t), 1e-15) << "kind " << int(kind) << " W " << W << " t " << t;
    }
}

TEST(Schedule, LandmarksOfTheHfSchedules) {
  const double lr = 1e-3;
  const train::LrSchedule cos = make(ScheduleKind::cosine, lr, 10, 110);
  EXPECT_EQ(cos.lr_at(0), 0.0);                 // HF: the first warmup step runs at 0
  EXPECT_DOUBLE_EQ(cos.lr_at(5), lr / 2);       // halfway through warmup
  EXPECT_DOUBLE_EQ(cos.lr_at(10), lr);          // peak right after warmup
  EXPECT_NEAR(cos.lr_at(60), lr / 2, 1e-18);    // cosine midpoint
  EXPECT_NEAR(cos.lr_at(110), 0.0, 1e-18);      // decays to 0 with min_lr_ratio 0
  EXPECT_NEAR(cos.lr_at(500), 0.0, 1e-18);      // and stays there past N
  const train::LrSchedule lin = make(ScheduleKind::linear, lr, 0, 32);  // METHODS §2.6: linear, no warmup
  EXPECT_DOUBLE_EQ(lin.lr_at(0), lr);
  EXPECT_DOUBLE_EQ(lin.lr_at(8), lr * 24.0 / 32.0);
  EXPECT_DOUBLE_EQ(lin.lr_at(31), lr / 32.0);
  const train::LrSchedule con = make(ScheduleKind::constant, lr, 4, 50);
  EXPECT_DOUBLE_EQ(con.lr_at(2), lr / 2);
  EXPECT_DOUBLE_EQ(con.lr_at(4), lr);
  EXPECT_DOUBLE_EQ(con.lr_at(49), lr);
}

TEST(Schedule, MinLrRatioRaisesTheFloorOnly) {
  const double lr = 2e-3, ratio = 0.1;
  for (ScheduleKind kind : {ScheduleKind::cosine, ScheduleKind::linear}) {
    const train::LrSchedule s = make(kind, lr, 7, 61, ratio);
    for (int64_t t = 0; t <= 70; ++t) {
      const double hf = p13(kind, lr, 7, 61, std::min<int64_t>(t, 61));
      // Warmup unchanged; after it the decay is rescaled into [ratio·lr, lr].
      const double expect = t < 7 ? hf : ratio * lr + (1 - ratio) * hf;
      EXPECT_NEAR(s.lr_at(t), expect, 1e-15) << t;
    }
    EXPECT_NEAR(s.lr_at(61), ratio * lr, 1e-18);
  }
}

TEST(Schedule, WarmupLongerThanTheRunNeverReachesThePeak) {
  // An epochs-based run can end up shorter than its warmup (HF then stays in warmup too).
  const train::LrSchedule s = make(ScheduleKind::cosine, 1e-3, 100, 24);
  for (int64_t t = 0; t < 24; ++t) EXPECT_DOUBLE_EQ(s.lr_at(t), 1e-3 * double(t) / 100.0) << t;
  EXPECT_THROW(make(ScheduleKind::cosine, 1e-3, 0, 0), Error);
}

}  // namespace
}  // namespace attnlab::test
