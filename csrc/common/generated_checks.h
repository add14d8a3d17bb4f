// Argument checks of the generated-weight ops: the ring and the range of the virtual weight sequence.
#pragma once

#include "checks.h"
#include "generated.h"

namespace leanconv::checks {

inline void check_ring(const at::Tensor& ring) {
  check_dim(ring, 1, "ring");
  TORCH_CHECK(ring.numel() > 0, "leanconv: ring must not be empty");
  check_floating(ring, "ring");
}

// A contiguous range [offset, offset + numel) of the virtual weight sequence [0, total). Compared without
// forming offset + numel, which could wrap around for an offset near the int64 limit.
inline void check_ring_range(int64_t total, int64_t offset, int64_t numel) {
  TORCH_CHECK(total > 0,
              "leanconv: the ring's virtual weight sequence is empty (total = ", total,
              "): create the layers that draw on a ring before generating weights from it");
  TORCH_CHECK(total <= common::kMaxRingTotal, "leanconv: total must be at most 2^62, got ", total);
  TORCH_CHECK(offset >= 0, "leanconv: offset must be non-negative, got ", offset);
  TORCH_CHECK(numel >= 0, "leanconv: the generated shape must have non-negative sizes, got numel ", numel);
  TORCH_CHECK(offset <= total && numel <= total - offset, "leanconv: the range [offset, offset + numel) = [", offset,
              ", ", offset, " + ", numel, ") lies outside the ring's virtual weight sequence [0, ", total, ")");
}

inline void check_ring_backward(const at::Tensor& grad, int64_t ring_size, int64_t total, int64_t offset) {
  check_floating(grad, "grad");
  TORCH_CHECK(ring_size > 0, "leanconv: ring_size must be positive, got ", ring_size);
  check_ring_range(total, offset, grad.numel());
}

}  // namespace leanconv::checks
