// Autograd of generate_weights, registered at the Autograd key so C++ programs train too.
#include <torch/autograd.h>
#include <torch/library.h>

#include "leanconv/ops.h"

namespace leanconv::autograd {
namespace {

class GenerateWeightsFunction : public torch::autograd::Function<GenerateWeightsFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& ring,
                                                int64_t seed, int64_t total, int64_t offset,
                                                c10::IntArrayRef shape, double scale) {
    ctx->saved_data["ring_size"] = ring.sym_numel();
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["total"] = total;
    ctx->saved_data["offset"] = offset;
    ctx->saved_data["scale"] = scale;
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {ops::generate_weights(ring, seed, total, offset, shape, scale)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto& d = ctx->saved_data;
    auto grad_ring = ops::generate_weights_backward(grad_outputs[0], d.at("ring_size").toSymInt(),
                                                    d.at("seed").toInt(), d.at("total").toInt(),
                                                    d.at("offset").toInt(), d.at("scale").toDouble());
    return {grad_ring, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor generate_weights_autograd(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                                     c10::IntArrayRef shape, double scale) {
  return GenerateWeightsFunction::apply(ring, seed, total, offset, shape, scale)[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("generate_weights", &generate_weights_autograd);
}

}  // namespace leanconv::autograd
