// Autograd of the generated-weight (RPG) ops, registered at the Autograd key so C++ programs train too.
// Both ops are linear and each is the other's adjoint, so their derivatives are each other: gradients of
// any order, and torch.func, come from the two kernels (derivatives.h).
#include <torch/library.h>

#include "autograd/derivatives.h"
#include "leanconv/ops/generated.h"

namespace leanconv::autograd {
namespace {

at::Tensor generate_weights_autograd(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                                     c10::IntArrayRef shape, double scale) {
  return linear_op(
      "leanconv::GenerateWeightsBackward", ring,
      [&](const at::Tensor& r) { return ops::generate_weights(r, seed, total, offset, shape, scale); },
      [&](const at::Tensor& r) -> AdjointNode::Adjoint {
        return [ring_size = r.sym_numel(), seed, total, offset, scale](const at::Tensor& grad) {
          return ops::generate_weights_backward(grad, ring_size, seed, total, offset, scale);
        };
      });
}

at::Tensor generate_weights_backward_autograd(const at::Tensor& grad, c10::SymInt ring_size, int64_t seed,
                                              int64_t total, int64_t offset, double scale) {
  return linear_op(
      "leanconv::GenerateWeightsBackwardBackward", grad,
      [&](const at::Tensor& g) { return ops::generate_weights_backward(g, ring_size, seed, total, offset, scale); },
      [&](const at::Tensor& g) -> AdjointNode::Adjoint {
        return [shape = g.sizes().vec(), seed, total, offset, scale](const at::Tensor& grad_ring) {
          return ops::generate_weights(grad_ring, seed, total, offset, shape, scale);
        };
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("generate_weights", &generate_weights_autograd);
  m.impl("generate_weights_backward", &generate_weights_backward_autograd);
}

}  // namespace leanconv::autograd
