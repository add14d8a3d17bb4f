// The generated-weight family's ops (docs/generated.md).
// Each function goes through the PyTorch dispatcher, so the CPU, CUDA, autograd and autocast registrations apply
// exactly as they do for torch.ops.leanconv.* from Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>

namespace leanconv::ops {

// Returns a tensor of `shape` holding positions [offset, offset + numel) of a model's virtual weight
// sequence of length `total`: out[j] = scale * s(offset + j) * ring[pi(offset + j) mod ring.numel()],
// with pi and s fixed by `seed` (see csrc/common/ring_permutation.h). Differentiable w.r.t. `ring`.
at::Tensor generate_weights(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                            at::IntArrayRef shape, double scale);

// The adjoint of generate_weights: reduces `grad` (any shape, numel elements) into a ring of `ring_size`
// entries. Without atomics, and so deterministic, whenever deterministic algorithms are requested.
// ring_size is a SymInt so the op traces with symbolic shapes (torch.compile, torch.export).
at::Tensor generate_weights_backward(const at::Tensor& grad, c10::SymInt ring_size, int64_t seed, int64_t total,
                                     int64_t offset, double scale);

}  // namespace leanconv::ops
