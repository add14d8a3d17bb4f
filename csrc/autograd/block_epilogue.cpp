// Autograd of the block-epilogue ops, registered at the Autograd key (see derivatives.h for why a Node rather than
// a torch::autograd::Function). First-order backward runs the fused backward kernels; a backward that must itself
// be differentiable (create_graph=True, torch.func) takes the aten composition of composite/block_epilogue.h,
// which differentiates through the saved mean and invstd outputs back into this op, as aten's batch_norm does.
#include <ATen/TensorOperators.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include "autograd/derivatives.h"
#include "leanconv/ops/block_epilogue.h"
#include "composite/block_epilogue.h"

namespace leanconv::autograd {
namespace {

using torch::autograd::SavedVariable;

// Without a ReLU the residual's gradient is grad_output itself: the kernels are not asked for it (it would be a
// copy) and the node passes grad_output on. Returns the mask to give the kernels.
std::array<bool, 4> kernel_mask(std::array<bool, 4> mask, bool pass_residual) {
  if (pass_residual) mask[3] = false;
  return mask;
}

class BatchNormEpilogueBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    variable_list result(4);
    const std::array<bool, 4> mask{task_should_compute_output(0), has_weight_ && task_should_compute_output(1),
                                   has_bias_ && task_should_compute_output(2),
                                   has_residual_ && task_should_compute_output(3)};
    if (!(grads[0].defined() || grads[1].defined() || grads[2].defined() || grads[3].defined()) ||
        !(mask[0] || mask[1] || mask[2] || mask[3])) {
      return result;
    }
    // mean and invstd are this op's outputs: unpacked with this node as their grad_fn, so a double backward
    // differentiates through them.
    const auto input = input_.unpack(), weight = weight_.unpack();
    const auto mean = mean_.unpack(shared_from_this()), invstd = invstd_.unpack(shared_from_this());
    // var = invstd^-2 - eps: its gradient reaches the input through invstd's.
    if (grads[3].defined()) {
      const auto through_var = grads[3] * invstd.pow(-3) * -2;
      grads[2] = grads[2].defined() ? grads[2] + through_var : through_var;
    }
    const auto output = relu_ ? output_.unpack(shared_from_this()) : at::Tensor();
    const auto grad_output = grads[0].defined() ? grads[0] : at::zeros_like(input);
    const bool differentiable = builds_graph({grad_output, grads[1], grads[2], input, weight, mean, invstd});
    const bool pass_residual = !relu_ && mask[3] && grads[0].defined();
    const auto op_mask = kernel_mask(mask, pass_residual);
    std::tie(result[0], result[1], result[2], result[3]) =
        differentiable
            ? composite::batch_norm_epilogue_backward_composite(grad_output, grads[1], grads[2], output, input, weight, mean,
                                                          invstd, relu_, op_mask)
            : ops::batch_norm_epilogue_backward(grad_output, optional_of(grads[1]), optional_of(grads[2]),
                                                optional_of(output), input, optional_of(weight), mean, invstd, relu_,
                                                op_mask);
    if (pass_residual) result[3] = grads[0];
    result[1] = cast_to(result[1], parameter_dtype_);
    result[2] = cast_to(result[2], parameter_dtype_);
    return result;
  }

  std::string name() const override { return "leanconv::BatchNormEpilogueBackward"; }

  void release_variables() override {
    input_.reset_data();
    weight_.reset_data();
    output_.reset_data();
    mean_.reset_data();
    invstd_.reset_data();
  }

  SavedVariable input_, weight_, output_, mean_, invstd_;
  bool relu_ = false, has_weight_ = false, has_bias_ = false, has_residual_ = false;
  std::optional<at::ScalarType> parameter_dtype_;
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_autograd(const at::Tensor& input,
                                                                           const std::optional<at::Tensor>& weight,
                                                                           const std::optional<at::Tensor>& bias,
                                                                           const std::optional<at::Tensor>& residual,
                                                                           bool relu, double eps) {
  const auto w = defined_or_empty(weight), b = defined_or_empty(bias), r = defined_or_empty(residual);
  const bool requires_grad = torch::autograd::compute_requires_grad(input, w, b, r);
  at::Tensor out, mean, invstd, var;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    std::tie(out, mean, invstd, var) = ops::batch_norm_epilogue(input, weight, bias, residual, relu, eps);
  }
  if (requires_grad) {
    auto node = new_node<BatchNormEpilogueBackward>(input, w, b, r);
    torch::autograd::set_history(std::vector<at::Tensor>{out, mean, invstd, var}, node);
    node->input_ = SavedVariable(input, false);
    node->weight_ = SavedVariable(w, false);
    if (relu) node->output_ = SavedVariable(out, true);
    node->mean_ = SavedVariable(mean, true);
    node->invstd_ = SavedVariable(invstd, true);
    node->relu_ = relu;
    node->has_weight_ = w.defined();
    node->has_bias_ = b.defined();
    node->has_residual_ = r.defined();
    if (w.defined() || b.defined()) node->parameter_dtype_ = (w.defined() ? w : b).scalar_type();
  }
  const auto dx = tangent_of(input), dw = tangent_of(w), db = tangent_of(b), dr = tangent_of(r);
  if (dx.defined() || dw.defined() || db.defined() || dr.defined()) {
    const auto [dout, dmean, dinvstd] = composite::batch_norm_epilogue_tangent(
        dx, dw, db, dr, out._fw_primal(0), input._fw_primal(0), w.defined() ? w._fw_primal(0) : w, mean._fw_primal(0),
        invstd._fw_primal(0), relu);
    out._set_fw_grad(dout, /*level=*/0, /*is_inplace_op=*/false);
    mean._set_fw_grad(dmean, /*level=*/0, /*is_inplace_op=*/false);
    invstd._set_fw_grad(dinvstd, /*level=*/0, /*is_inplace_op=*/false);
    var._set_fw_grad(dinvstd * invstd._fw_primal(0).pow(-3) * -2, /*level=*/0, /*is_inplace_op=*/false);
  }
  return {out, mean, invstd, var};
}

class AffineEpilogueBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    variable_list result(4);
    const std::array<bool, 4> mask{task_should_compute_output(0), has_scale_ && task_should_compute_output(1),
                                   has_shift_ && task_should_compute_output(2),
                                   has_residual_ && task_should_compute_output(3)};
    if (!grads[0].defined() || !(mask[0] || mask[1] || mask[2] || mask[3])) return result;
    const auto input = input_.unpack(), scale = scale_.unpack();
    const auto output = relu_ ? output_.unpack(shared_from_this()) : at::Tensor();
    const bool differentiable = builds_graph({grads[0], input, scale});
    const bool pass_residual = !relu_ && mask[3];
    const auto op_mask = kernel_mask(mask, pass_residual);
    std::tie(result[0], result[1], result[2], result[3]) =
        differentiable ? composite::affine_epilogue_backward_composite(grads[0], output, input, scale, relu_, op_mask)
                       : ops::affine_epilogue_backward(grads[0], optional_of(output), input, optional_of(scale), relu_,
                                                       op_mask);
    if (pass_residual) result[3] = grads[0];
    result[1] = cast_to(result[1], scale_dtype_);
    result[2] = cast_to(result[2], shift_dtype_);
    return result;
  }

  std::string name() const override { return "leanconv::AffineEpilogueBackward"; }

  void release_variables() override {
    input_.reset_data();
    scale_.reset_data();
    output_.reset_data();
  }

  SavedVariable input_, scale_, output_;
  bool relu_ = false, has_scale_ = false, has_shift_ = false, has_residual_ = false;
  std::optional<at::ScalarType> scale_dtype_, shift_dtype_;
};

at::Tensor affine_epilogue_autograd(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                                    const std::optional<at::Tensor>& shift, const std::optional<at::Tensor>& residual,
                                    bool relu) {
  const auto a = defined_or_empty(scale), c = defined_or_empty(shift), r = defined_or_empty(residual);
  const bool requires_grad = torch::autograd::compute_requires_grad(input, a, c, r);
  at::Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    out = ops::affine_epilogue(input, scale, shift, residual, relu);
  }
  if (requires_grad) {
    auto node = new_node<AffineEpilogueBackward>(input, a, c, r);
    torch::autograd::set_history(out, node);
    node->input_ = SavedVariable(input, false);
    node->scale_ = SavedVariable(a, false);
    if (relu) node->output_ = SavedVariable(out, true);
    node->relu_ = relu;
    node->has_scale_ = a.defined();
    node->has_shift_ = c.defined();
    node->has_residual_ = r.defined();
    if (a.defined()) node->scale_dtype_ = a.scalar_type();
    if (c.defined()) node->shift_dtype_ = c.scalar_type();
  }
  const auto dx = tangent_of(input), da = tangent_of(a), dc = tangent_of(c), dr = tangent_of(r);
  if (dx.defined() || da.defined() || dc.defined() || dr.defined()) {
    out._set_fw_grad(composite::affine_epilogue_tangent(dx, da, dc, dr, out._fw_primal(0), input._fw_primal(0),
                                                  a.defined() ? a._fw_primal(0) : a, relu),
                     /*level=*/0, /*is_inplace_op=*/false);
  }
  return out;
}

// What the refused backward ops (refuse_graph) send their callers to.
constexpr const char* kDifferentiateTheForward = "the forward op, whose double backward goes through aten";

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward_autograd(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> output_mask) {
  refuse_graph("batch_norm_epilogue_backward", kDifferentiateTheForward,
               {grad_output, defined_or_empty(grad_mean), defined_or_empty(grad_invstd), input,
                defined_or_empty(weight), mean, invstd});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::batch_norm_epilogue_backward(grad_output, grad_mean, grad_invstd, output, input, weight, mean, invstd,
                                           relu, output_mask);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward_autograd(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& scale, bool relu, std::array<bool, 4> output_mask) {
  refuse_graph("affine_epilogue_backward", kDifferentiateTheForward, {grad_output, input, defined_or_empty(scale)});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::affine_epilogue_backward(grad_output, output, input, scale, relu, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("batch_norm_epilogue", &batch_norm_epilogue_autograd);
  m.impl("batch_norm_epilogue_backward", &batch_norm_epilogue_backward_autograd);
  m.impl("affine_epilogue", &affine_epilogue_autograd);
  m.impl("affine_epilogue_backward", &affine_epilogue_backward_autograd);
}

}  // namespace leanconv::autograd
