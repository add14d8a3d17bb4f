// Argument checks shared by every kernel, so Python and C++ callers see the same messages.
// Each message names the argument and says what was expected and what was given.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string_view>

#include "ring_permutation.h"

namespace leanconv::checks {

inline void check_floating(const at::Tensor& t, std::string_view name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()),
              "leanconv: ", name, " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, std::string_view name) {
  TORCH_CHECK(t.dim() == dim, "leanconv: ", name, " must be ", dim, "-D, got a ", t.dim(),
              "-D tensor of shape ", t.sizes());
}

inline void check_same_device(const at::Tensor& a, std::string_view a_name, const at::Tensor& b,
                              std::string_view b_name) {
  TORCH_CHECK(a.device() == b.device(), "leanconv: ", a_name, " and ", b_name,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

inline void check_same_dtype(const at::Tensor& a, std::string_view a_name, const at::Tensor& b,
                             std::string_view b_name) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "leanconv: ", a_name, " and ", b_name,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// ---- generated-weight family --------------------------------------------------------------------

inline void check_ring(const at::Tensor& ring) {
  check_dim(ring, 1, "ring");
  TORCH_CHECK(ring.numel() > 0, "leanconv: ring must not be empty");
  check_floating(ring, "ring");
}

// A contiguous range [offset, offset + numel) of the virtual weight sequence [0, total).
inline void check_ring_range(int64_t total, int64_t offset, int64_t numel) {
  TORCH_CHECK(total > 0,
              "leanconv: the ring's virtual weight sequence is empty (total = ", total,
              "): create the layers that draw on a ring before generating weights from it");
  TORCH_CHECK(total <= common::kMaxRingTotal, "leanconv: total must be at most 2^62, got ", total);
  TORCH_CHECK(offset >= 0, "leanconv: offset must be non-negative, got ", offset);
  TORCH_CHECK(numel >= 0, "leanconv: the generated shape must have non-negative sizes, got numel ", numel);
  TORCH_CHECK(offset + numel <= total, "leanconv: the range [offset, offset + numel) = [", offset, ", ",
              offset + numel, ") lies outside the ring's virtual weight sequence [0, ", total, ")");
}

inline int64_t checked_numel(at::IntArrayRef shape) {
  int64_t numel = 1;
  for (const auto size : shape) {
    TORCH_CHECK(size >= 0, "leanconv: shape must have non-negative sizes, got ", shape);
    numel *= size;
  }
  return numel;
}

}  // namespace leanconv::checks
