// The block-epilogue ops' derivatives composed of aten ops: differentiable, device-generic, and used where a
// derivative must itself be differentiated (create_graph=True, torch.func) and for forward-mode tangents.
// The formulas are those of common/block_epilogue.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

namespace leanconv::composite {

// Undefined tensors stand for absent operands (no weight: 1, no gradient or tangent: 0); `output` is the forward
// output, needed only for the ReLU's mask (through which no derivative flows).

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& grad_mean, const at::Tensor& grad_invstd, const at::Tensor& output,
    const at::Tensor& input, const at::Tensor& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> output_mask);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& output, const at::Tensor& input, const at::Tensor& scale,
    bool relu, std::array<bool, 4> output_mask);

// Tangents of (out, mean, invstd) for tangents of (input, weight, bias, residual), at the primal point.
std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_tangent(
    const at::Tensor& input_tangent, const at::Tensor& weight_tangent, const at::Tensor& bias_tangent,
    const at::Tensor& residual_tangent, const at::Tensor& output, const at::Tensor& input, const at::Tensor& weight,
    const at::Tensor& mean, const at::Tensor& invstd, bool relu);

// Tangent of out for tangents of (input, scale, shift, residual).
at::Tensor affine_epilogue_tangent(const at::Tensor& input_tangent, const at::Tensor& scale_tangent,
                                   const at::Tensor& shift_tangent, const at::Tensor& residual_tangent,
                                   const at::Tensor& output, const at::Tensor& input, const at::Tensor& scale, bool relu);

}  // namespace leanconv::composite
