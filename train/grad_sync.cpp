#include "train/grad_sync.h"

#include <algorithm>

#include "core/error.h"

namespace attnlab::train {

namespace {

// Shares of 64 elements: 256-byte aligned for f32 gradients, so every rank's share of every
// bucket starts aligned (vector loads in the optimizer's kernels).
constexpr int64_t kShareAlign = 64;

}  // namespace

GradSync::GradSync(ParamStore& params, dist::Communicator& comm, const Ctx& ctx, double bucket_mb, bool zero1)
    : comm_(comm), params_(params), zero1_(zero1), world_(comm.world_size()), rank_(comm.rank()) {
  CHECK(params.grads_allocated(), "GradSync needs the gradients allocated (the trainable set final)");
  const int64_t unit = int64_t(world_) * kShareAlign;
  params.set_grad_arena_multiple(ctx, unit);
  numel_ = params.grad_arena_numel();
  CHECK(numel_ % unit == 0, "gradient arena of ", numel_, " elements is not a multiple of ", unit);

  const int64_t elt = int64_t(dtype_size(params.grad_dtype()));
  int64_t size = bucket_mb > 0 ? int64_t(bucket_mb * 1024.0 * 1024.0) / elt : numel_;
  size = std::max<int64_t>(unit, size / unit * unit);
  for (int64_t hi = numel_; hi > 0;) {
    const int64_t lo = std::max<int64_t>(0, hi - size);
    buckets_.push_back({lo, hi - lo});
    hi = lo;
  }
  if (zero1_) {
    for (auto it = buckets_.rbegin(); it != buckets_.rend(); ++it) {
      const int64_t n = it->count / world_;
      shard_.push_back({it->begin + rank_ * n, n});
    }
  } else {
    shard_.push_back({0, numel_});
  }

  // Watermarks: the offset of the first trainable gradient at or after each parameter.
  std::vector<const Param*> order;
  for (const Param& p : params) order.push_back(&p);
  watermarks_.resize(order.size());
  int64_t next = numel_;
  for (size_t i = order.size(); i-- > 0;) {
    if (order[i]->grad.defined()) next = params.grad_offset(*order[i]);
    watermarks_[i] = {order[i], next};
  }
}

int64_t GradSync::watermark_of(const Param& p) const {
  for (const auto& [param, offset] : watermarks_)
    if (param == &p) return offset;
  FAIL_WITH("GradSync: parameter '", p.name, "' is not in the store it was built for");
}

void GradSync::arm() { armed_ = true; }

void GradSync::launch(size_t b) {
  const ElementRange& r = buckets_[b];
  const Tensor all = params_.grad_arena();
  const Tensor bucket = all.slice0(r.begin, r.end());
  if (zero1_) {
    const int64_t n = r.count / world_;
    pending_.push_back(comm_.reduce_scatter_sum_async(bucket, all.slice0(r.begin + rank_ * n, r.begin + (rank_ + 1) * n)));
  } else {
    pending_.push_back(comm_.all_reduce_sum_async(bucket, bucket));
  }
}

void GradSync::poll() {
  for (dist::CommHandle& h : pending_)
    if (h.pending()) h.test();
}

void GradSync::ready_from(int64_t offset) {
  if (!armed_) return;
  while (next_ < buckets_.size() && buckets_[next_].begin >= offset) launch(next_++);
  poll();
}

void GradSync::finish() {
  while (next_ < buckets_.size()) launch(next_++);
  for (dist::CommHandle& h : pending_) h.wait();
  pending_.clear();
  next_ = 0;
  armed_ = false;
}

void GradSync::all_gather(const Tensor& values) {
  if (!zero1_) return;
  CHECK(values.numel() == numel_, "GradSync::all_gather: ", values.numel(), " elements, the arena has ", numel_);
  std::vector<dist::CommHandle> handles;
  for (const ElementRange& r : buckets_) {
    const int64_t n = r.count / world_;
    handles.push_back(comm_.all_gather_async(values.slice0(r.begin + rank_ * n, r.begin + (rank_ + 1) * n),
                                             values.slice0(r.begin, r.end())));
  }
  for (dist::CommHandle& h : handles) h.wait();
}

}  // namespace attnlab::train
