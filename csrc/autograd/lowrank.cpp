// Autograd of the low-rank (DeCEF) eigen-filter conv, registered at the Autograd key (see derivatives.h for
// why a Node rather than a torch::autograd::Function). Only the operands are saved: the fused backward op
// recomputes the depthwise intermediate tile by tile.
//
// When the backward itself must be differentiable (create_graph=True, which torch.func.grad always asks
// for), the gradients are computed instead from aten's differentiable convolution_backward: the depthwise
// conv with the bases, then the 1x1 conv with the coefficients. That path stores the C_in*R intermediate,
// but gives exact higher-order gradients and batches under vmap.
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include "autograd/derivatives.h"
#include "leanconv/ops/lowrank.h"
#include "composite/lowrank.h"

namespace leanconv::autograd {
namespace {

using torch::autograd::SavedVariable;

class EigenConv2dBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    variable_list result(4);
    const auto& grad_output = grads[0];
    if (!grad_output.defined()) return result;
    const auto input = input_.unpack(), basis = basis_.unpack(), coeff = coeff_.unpack();
    const std::array<bool, 3> mask{task_should_compute_output(0), task_should_compute_output(1),
                                   task_should_compute_output(2)};
    if (mask[0] || mask[1] || mask[2]) {
      const bool differentiable = builds_graph({grad_output, input, basis, coeff});
      std::tie(result[0], result[1], result[2]) =
          differentiable ? composite::eigen_conv2d_backward_composite(grad_output, input, basis, coeff, stride_, padding_,
                                                                 dilation_, mask)
                         : ops::eigen_conv2d_backward(grad_output, input, basis, coeff, stride_, padding_, dilation_,
                                                      mask);
    }
    if (has_bias_ && task_should_compute_output(3)) result[3] = grad_output.sum({0, 2, 3});
    return result;
  }

  std::string name() const override { return "leanconv::EigenConv2dBackward"; }

  void release_variables() override {
    input_.reset_data();
    basis_.reset_data();
    coeff_.reset_data();
  }

  SavedVariable input_, basis_, coeff_;
  std::vector<int64_t> stride_, padding_, dilation_;
  bool has_bias_ = false;
};

at::Tensor eigen_conv2d_autograd(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation) {
  const auto bias_tensor = defined_or_empty(bias);
  const bool requires_grad = torch::autograd::compute_requires_grad(input, basis, coeff, bias_tensor);
  at::Tensor output;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    output = ops::eigen_conv2d(input, basis, coeff, bias, stride, padding, dilation);
  }
  if (requires_grad) {
    auto node = new_node<EigenConv2dBackward>(input, basis, coeff, bias_tensor);
    node->input_ = SavedVariable(input, false);
    node->basis_ = SavedVariable(basis, false);
    node->coeff_ = SavedVariable(coeff, false);
    node->stride_ = stride.vec();
    node->padding_ = padding.vec();
    node->dilation_ = dilation.vec();
    node->has_bias_ = bias_tensor.defined();
    torch::autograd::set_history(output, node);
  }
  // Forward mode: the conv is linear in each of input, basis and coeff, and affine in the bias.
  const auto dx = tangent_of(input), dbasis = tangent_of(basis), dcoeff = tangent_of(coeff), dbias = tangent_of(bias_tensor);
  if (dx.defined() || dbasis.defined() || dcoeff.defined() || dbias.defined()) {
    // The tangent is built from the primals: operands that carry tangents of their own must not pass them on.
    const auto x = input._fw_primal(0), b = basis._fw_primal(0), a = coeff._fw_primal(0);
    at::Tensor tangent = at::zeros_like(output);
    if (dx.defined()) tangent = tangent.add(ops::eigen_conv2d(dx, b, a, std::nullopt, stride, padding, dilation));
    if (dbasis.defined()) tangent = tangent.add(ops::eigen_conv2d(x, dbasis, a, std::nullopt, stride, padding, dilation));
    if (dcoeff.defined()) tangent = tangent.add(ops::eigen_conv2d(x, b, dcoeff, std::nullopt, stride, padding, dilation));
    if (dbias.defined()) tangent = tangent.add(dbias.view({1, -1, 1, 1}));
    output._set_fw_grad(tangent, /*level=*/0, /*is_inplace_op=*/false);
  }
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward_autograd(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> output_mask) {
  refuse_graph("eigen_conv2d_backward", "eigen_conv2d itself, whose double backward goes through aten's convolutions",
               {grad_output, input, basis, coeff});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::eigen_conv2d_backward(grad_output, input, basis, coeff, stride, padding, dilation, output_mask);
}

// The materialised path's weight is bilinear in (basis, coeff): its backward is eigen_weight_backward, or the
// differentiable batched products of the composite when a graph is built through it.
class EigenWeightBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    variable_list result(2);
    const auto& grad_weight = grads[0];
    const std::array<bool, 2> mask{task_should_compute_output(0), task_should_compute_output(1)};
    if (!grad_weight.defined() || !(mask[0] || mask[1])) return result;
    const auto basis = basis_.unpack(), coeff = coeff_.unpack();
    std::tie(result[0], result[1]) = builds_graph({grad_weight, basis, coeff})
                                         ? composite::eigen_weight_backward_composite(grad_weight, basis, coeff, mask)
                                         : ops::eigen_weight_backward(grad_weight, basis, coeff, mask);
    return result;
  }

  std::string name() const override { return "leanconv::EigenWeightBackward"; }

  void release_variables() override {
    basis_.reset_data();
    coeff_.reset_data();
  }

  SavedVariable basis_, coeff_;
};

at::Tensor eigen_weight_autograd(const at::Tensor& basis, const at::Tensor& coeff) {
  const bool requires_grad = torch::autograd::compute_requires_grad(basis, coeff);
  at::Tensor weight;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    weight = ops::eigen_weight(basis, coeff);
  }
  if (requires_grad) {
    auto node = new_node<EigenWeightBackward>(basis, coeff);
    node->basis_ = SavedVariable(basis, false);
    node->coeff_ = SavedVariable(coeff, false);
    torch::autograd::set_history(weight, node);
  }
  const auto dbasis = tangent_of(basis), dcoeff = tangent_of(coeff);
  if (dbasis.defined() || dcoeff.defined()) {
    const auto b = basis._fw_primal(0), a = coeff._fw_primal(0);
    at::Tensor tangent = at::zeros_like(weight);
    if (dbasis.defined()) tangent = tangent.add(ops::eigen_weight(dbasis, a));
    if (dcoeff.defined()) tangent = tangent.add(ops::eigen_weight(b, dcoeff));
    weight._set_fw_grad(tangent, /*level=*/0, /*is_inplace_op=*/false);
  }
  return weight;
}

std::tuple<at::Tensor, at::Tensor> eigen_weight_backward_autograd(const at::Tensor& grad_weight,
                                                                  const at::Tensor& basis, const at::Tensor& coeff,
                                                                  std::array<bool, 2> output_mask) {
  refuse_graph("eigen_weight_backward", "eigen_weight itself, whose double backward goes through batched products",
               {grad_weight, basis, coeff});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::eigen_weight_backward(grad_weight, basis, coeff, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("eigen_conv2d", &eigen_conv2d_autograd);
  m.impl("eigen_conv2d_backward", &eigen_conv2d_backward_autograd);
  m.impl("eigen_weight", &eigen_weight_autograd);
  m.impl("eigen_weight_backward", &eigen_weight_backward_autograd);
}

}  // namespace leanconv::autograd
