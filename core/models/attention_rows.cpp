#include "core/models/attention_rows.h"

#include <algorithm>

#include "core/error.h"
#include "core/memory.h"
#include "core/probes.h"

namespace attnlab {

std::vector<std::vector<double>> planned_attention_rows(TrainableModel& m, Ctx& ctx, const std::vector<int32_t>& ids,
                                                        const std::vector<int32_t>& rows, int64_t layer) {
  const int64_t T = int64_t(ids.size()), n = int64_t(rows.size());
  CHECK(T > 0 && n > 0, "attention_rows: need tokens and rows");
  CHECK(layer >= 0 && layer < m.num_layers(), "attention_rows: layer ", layer, " of ", m.num_layers());
  for (int32_t r : rows) CHECK(r >= 0 && r < T, "attention_rows: row ", r, " outside the ", T, " tokens");
  ProbeSink sink;
  ProbeRequest req;
  req.layers = {layer};
  req.rows = rows;
  req.probs = true;
  sink.add(req);
  std::vector<double> id_values(ids.begin(), ids.end());
  Buffer id_buf(m.device(), DType::i32, {1, T}, "capture.ids");
  from_host_f64(ctx, id_buf.t(), id_values);
  {
    ProbeScope scope(ctx, &sink);
    m.forward(ctx, id_buf.t(), Tensor(), 0);
  }
  const auto taken = sink.find("probs", layer);
  INPUT_CHECK(taken.size() == 1, "layer ", layer, " of ", m.describe(), " gave ", taken.size(),
              " attention probability captures (expected 1): its attention variant does not capture probabilities");
  // The sink captures the sorted, distinct rows [B, H, m, T]; map each asked row to its slot.
  std::vector<int32_t> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  const Capture& c = *taken[0];
  const int64_t mrows = int64_t(sorted.size());
  CHECK(c.shape.size() == 4 && c.shape[0] == 1 && c.shape[2] == mrows && c.shape[3] == T,
        "attention_rows: unexpected capture shape");
  const int64_t H = c.shape[1];
  const std::vector<double>& p = c.values;
  std::vector<std::vector<double>> out(size_t(n), std::vector<double>(size_t(T), 0.0));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t slot = std::lower_bound(sorted.begin(), sorted.end(), rows[size_t(r)]) - sorted.begin();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < T; ++j) out[size_t(r)][size_t(j)] += p[size_t((h * mrows + slot) * T + j)] / double(H);
  }
  return out;
}

}  // namespace attnlab
