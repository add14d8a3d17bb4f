// Autograd of the grouped conv, registered at the Autograd key (see derivatives.h for why a Node rather than a
// torch::autograd::Function). Only the operands are saved.
//
// When the backward itself must be differentiable (create_graph=True, which torch.func.grad always asks for), the
// gradients come instead from aten's differentiable convolution_backward of the same grouped conv: exact
// higher-order gradients, and batching under vmap.
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include "autograd/derivatives.h"
#include "leanconv/ops/multigrid.h"
#include "composite/multigrid.h"

namespace leanconv::autograd {
namespace {

using torch::autograd::SavedVariable;

class GroupedConv2dBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    variable_list result(3);
    const auto& grad_output = grads[0];
    if (!grad_output.defined()) return result;
    const auto input = input_.unpack(), weight = weight_.unpack();
    const std::array<bool, 2> mask{task_should_compute_output(0), task_should_compute_output(1)};
    if (mask[0] || mask[1]) {
      const bool differentiable = builds_graph({grad_output, input, weight});
      std::tie(result[0], result[1]) =
          differentiable ? composite::grouped_conv2d_backward_composite(grad_output, input, weight, stride_, padding_,
                                                                   dilation_, groups_, mask)
                         : ops::grouped_conv2d_backward(grad_output, input, weight, stride_, padding_, dilation_,
                                                        groups_, mask);
    }
    if (has_bias_ && task_should_compute_output(2)) result[2] = grad_output.sum({0, 2, 3});
    return result;
  }

  std::string name() const override { return "leanconv::GroupedConv2dBackward"; }

  void release_variables() override {
    input_.reset_data();
    weight_.reset_data();
  }

  SavedVariable input_, weight_;
  std::vector<int64_t> stride_, padding_, dilation_;
  int64_t groups_ = 1;
  bool has_bias_ = false;
};

at::Tensor grouped_conv2d_autograd(const at::Tensor& input, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto bias_tensor = defined_or_empty(bias);
  const bool requires_grad = torch::autograd::compute_requires_grad(input, weight, bias_tensor);
  at::Tensor output;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    output = ops::grouped_conv2d(input, weight, bias, stride, padding, dilation, groups);
  }
  if (requires_grad) {
    auto node = new_node<GroupedConv2dBackward>(input, weight, bias_tensor);
    node->input_ = SavedVariable(input, false);
    node->weight_ = SavedVariable(weight, false);
    node->stride_ = stride.vec();
    node->padding_ = padding.vec();
    node->dilation_ = dilation.vec();
    node->groups_ = groups;
    node->has_bias_ = bias_tensor.defined();
    torch::autograd::set_history(output, node);
  }
  // Forward mode: the conv is bilinear in (input, weight) and affine in the bias.
  const auto dx = tangent_of(input), dw = tangent_of(weight), dbias = tangent_of(bias_tensor);
  if (dx.defined() || dw.defined() || dbias.defined()) {
    // The tangent is built from the primals: operands that carry tangents of their own must not pass them on.
    const auto x = input._fw_primal(0), w = weight._fw_primal(0);
    at::Tensor tangent = at::zeros_like(output);
    if (dx.defined()) tangent = tangent.add(ops::grouped_conv2d(dx, w, std::nullopt, stride, padding, dilation, groups));
    if (dw.defined()) tangent = tangent.add(ops::grouped_conv2d(x, dw, std::nullopt, stride, padding, dilation, groups));
    if (dbias.defined()) tangent = tangent.add(dbias.view({1, -1, 1, 1}));
    output._set_fw_grad(tangent, /*level=*/0, /*is_inplace_op=*/false);
  }
  return output;
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_autograd(const at::Tensor& grad_output,
                                                                    const at::Tensor& input, const at::Tensor& weight,
                                                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                                                    at::IntArrayRef dilation, int64_t groups,
                                                                    std::array<bool, 2> output_mask) {
  refuse_graph("grouped_conv2d_backward",
               "grouped_conv2d itself, whose double backward goes through aten's convolutions",
               {grad_output, input, weight});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::grouped_conv2d_backward(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("grouped_conv2d", &grouped_conv2d_autograd);
  m.impl("grouped_conv2d_backward", &grouped_conv2d_backward_autograd);
}

}  // namespace leanconv::autograd
