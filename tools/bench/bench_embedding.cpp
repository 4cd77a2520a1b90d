#include <cmath>
#include <random>
#include <unordered_set>

#include "core/memory.h"
#include "core/ops/embedding.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// Log-uniform ids (P(id) ∝ 1/(id+1), like word frequencies): a few ids take hundreds of the
// tokens, as in real text, so the backward's long-bucket path is part of what is timed.
std::vector<int32_t> zipf_ids(int64_t n, int64_t V, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids)
    id = int32_t(std::min<double>(double(V - 1), std::floor(std::exp(u(g) * std::log(double(V)))) - 1));
  return ids;
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 3 || s.size() == 4, "embedding sizes: V C N [T]");
  const int64_t V = s[0], C = s[1], N = s[2], T = s.size() == 4 ? s[3] : std::min<int64_t>(N, 1024);
  CHECK(N % T == 0, "embedding: N must be a multiple of T");
  const int64_t B = N / T;
  const std::string shape = "V=" + std::to_string(V) + " C=" + std::to_string(C) + " N=" + std::to_string(N);
  auto ids = zipf_ids(N, V, 1);
  const int64_t unique = int64_t(std::unordered_set<int32_t>(ids.begin(), ids.end()).size());
  auto table = random_values(size_t(V * C), 2), pos = random_values(size_t(T * C), 3),
       dout = random_values(size_t(N * C), 4);
  for (DType dt : bench_dtypes(r.ctx())) {
    Ctx& c = r.ctx();
    const DType at = acc_dtype(dt);
    const double es = double(dtype_size(dt)), as = double(dtype_size(at));
    // CPU reference in f64 on the rounded inputs; gradients start from zero for the check.
    Ctx cpu = Ctx::make_cpu();
    std::vector<double> tr = round_values(dt, table), pr = round_values(dt, pos), dr = round_values(dt, dout);
    Buffer ci(Device::cpu, DType::i32, {B, T});
    std::copy(ids.begin(), ids.end(), ci.t().ptr<int32_t>());
    Buffer ct = upload(cpu, DType::f64, {V, C}, tr), cp = upload(cpu, DType::f64, {T, C}, pr);
    Buffer co(Device::cpu, DType::f64, {B, T, C}), cdo = upload(cpu, DType::f64, {B, T, C}, dr);
    Buffer cdt = upload(cpu, DType::f64, {V, C}, std::vector<double>(size_t(V * C), 0.0));
    embedding_forward(cpu, {co.t(), ci.t(), ct.t(), cp.t()});
    EmbeddingBackwardArgs cb;
    cb.dtable = cdt.t();
    cb.dout = cdo.t();
    cb.ids = ci.t();
    embedding_backward(cpu, cb);

    Buffer ti(c.device, DType::i32, {B, T});
    copy_tensor(c, ti.t(), ci.t());
    Buffer tt = upload(c, dt, {V, C}, table), tp = upload(c, dt, {T, C}, pos), to(c.device, dt, {B, T, C});
    Buffer tdo = upload(c, dt, {B, T, C}, dout), tdt(c.device, at, {V, C});
    zero_tensor(c, tdt.t());
    Buffer xs(c.device, DType::i32, {int64_t(embedding_backward_index_scratch(N, V))});
    Buffer ps(c.device, DType::f32, {int64_t(embedding_backward_partial_scratch(N, C))});

    EmbeddingArgs fa{to.t(), ti.t(), tt.t(), tp.t()};
    embedding_forward(c, fa);
    Row row{"embedding_forward", dtype_label(dt) + " " + shape};
    row.rel_err = rel_error(to_host_f64(c, to.t()), to_host_f64(cpu, co.t()));
    verify(r, row, dt);
    row.us = r.time_us([&] { embedding_forward(c, fa); });
    row.bytes = 4.0 * N + double(unique) * C * es + double(T) * C * es + double(N) * C * es;  // ids, rows, pos; out
    row.note = std::to_string(unique) + " distinct ids";
    r.add(row);

    EmbeddingBackwardArgs ba;
    ba.dtable = tdt.t();
    ba.dout = tdo.t();
    ba.ids = ti.t();
    ba.index_scratch = xs.t();
    ba.partial_scratch = ps.t();
    embedding_backward(c, ba);
    Row brow{"embedding_backward", dtype_label(dt) + " " + shape};
    brow.rel_err = rel_error(to_host_f64(c, tdt.t()), to_host_f64(cpu, cdt.t()));
    verify(r, brow, dt);
    brow.us = r.time_us([&] { embedding_backward(c, ba); });
    brow.bytes = 4.0 * N + double(N) * C * es + 2.0 * unique * C * as;  // ids, dout in; touched dtable rows ±
    brow.note = "dtable only (GPT-2 ties wte; dpos adds one pass over dout)";
    r.add(brow);
  }
}

// GPT-2 124M: V = 50257, C = 768, B·T = 8·1024.
ATTNLAB_BENCH("embedding", "V C N [T]", {{50257, 768, 8192}}, run);

}  // namespace
}  // namespace attnlab::bench
