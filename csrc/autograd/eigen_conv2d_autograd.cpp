// Autograd of the low-rank (DeCEF) eigen-filter conv, registered at the Autograd key. Only the operands are
// saved: the backward op recomputes the depthwise intermediate tile by tile.
#include <torch/autograd.h>
#include <torch/library.h>

#include "leanconv/ops.h"

namespace leanconv::autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class EigenConv2dFunction : public torch::autograd::Function<EigenConv2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& basis,
                            const at::Tensor& coeff, const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation) {
    ctx->save_for_backward({input, basis, coeff});
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    // An absent bias is no input of the graph: needs_input_grad(3) exists only with one.
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return ops::eigen_conv2d(input, basis, coeff, bias, stride, padding, dilation);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& grad_output = grad_outputs[0];
    auto& d = ctx->saved_data;
    const std::array<bool, 3> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)};
    at::Tensor grad_input, grad_basis, grad_coeff, grad_bias;
    if (mask[0] || mask[1] || mask[2]) {
      std::tie(grad_input, grad_basis, grad_coeff) =
          ops::eigen_conv2d_backward(grad_output, saved[0], saved[1], saved[2], d["stride"].toIntVector(),
                                     d["padding"].toIntVector(), d["dilation"].toIntVector(), mask);
    }
    if (d["has_bias"].toBool() && ctx->needs_input_grad(3)) grad_bias = grad_output.sum({0, 2, 3});
    return {grad_input, grad_basis, grad_coeff, grad_bias, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor eigen_conv2d_autograd(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation) {
  return EigenConv2dFunction::apply(input, basis, coeff, bias, stride, padding, dilation);
}

// The backward op is not differentiable: refuse to build a graph through it rather than return a wrong one.
std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward_autograd(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> output_mask) {
  const bool differentiable = at::GradMode::is_enabled() && (grad_output.requires_grad() || input.requires_grad() ||
                                                             basis.requires_grad() || coeff.requires_grad());
  TORCH_CHECK(!differentiable,
              "leanconv: eigen_conv2d has no double backward (create_graph=True); use EigenConv2d with "
              "path='materialized' for higher-order gradients");
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::eigen_conv2d_backward(grad_output, input, basis, coeff, stride, padding, dilation, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("eigen_conv2d", &eigen_conv2d_autograd);
  m.impl("eigen_conv2d_backward", &eigen_conv2d_backward_autograd);
}

}  // namespace leanconv::autograd
