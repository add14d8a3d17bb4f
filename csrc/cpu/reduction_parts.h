// How the CPU backward kernels split a weight-gradient sum between threads and add it up, deterministically when
// torch.use_deterministic_algorithms asks: a fixed number of partial sums, added in order.
#pragma once

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

namespace leanconv::cpu {

// Partial sums under deterministic algorithms: enough for a many-core CPU, few enough that they stay small.
constexpr int64_t kDeterministicParts = 8;

// The partial sums of a reduction over `work_items` items: one per thread, or kDeterministicParts under
// deterministic algorithms (so the sums do not depend on the thread count); never more than the items.
inline int64_t reduction_parts(int64_t work_items) {
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  return std::max<int64_t>(1, std::min<int64_t>(work_items, deterministic ? kDeterministicParts : at::get_num_threads()));
}

// BLAS splits a GEMM between threads, and the split changes its rounding, unless it is called from inside a
// parallel region (it then runs sequentially). Under deterministic algorithms the loops therefore always open one:
// at least two tasks, so a one-task loop still opens a region when there is more than one thread.
inline int64_t parallel_tasks(int64_t work_items) {
  return at::globalContext().deterministicAlgorithms() ? std::max<int64_t>(work_items, 2) : work_items;
}

// parts[0] + parts[1] + ... in that order (a reduction kernel may choose its own order).
inline at::Tensor in_order_sum(const at::Tensor& parts) {
  auto sum = parts[0].clone();
  for (int64_t p = 1; p < parts.size(0); ++p) sum.add_(parts[p]);
  return sum;
}

}  // namespace leanconv::cpu
