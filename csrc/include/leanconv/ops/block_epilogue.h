// The block-epilogue ops (docs/shared.md): BatchNorm + optional residual add + optional ReLU in one pass over a
// feature map, with batch statistics (training) or a per-channel scale and shift (eval, or a folded BatchNorm).
// Each function goes through the PyTorch dispatcher, so the CPU, CUDA and autograd registrations apply exactly
// as they do for torch.ops.leanconv.* from Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <optional>
#include <tuple>

namespace leanconv::ops {

// Training-mode BatchNorm fused with its block's tail: per channel c, the mean, the variance var (biased) and
// invstd = 1/sqrt(var + eps) of the input over (N, H, W), then out = act(weight*(input - mean)*invstd + bias +
// residual), act = ReLU when `relu`. weight, bias and residual are optional. Returns (out, mean, invstd, var), all
// differentiable (var through invstd). The running statistics are not touched: fused_batch_norm below updates them
// from mean and var.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue(const at::Tensor& input,
                                                                  const std::optional<at::Tensor>& weight,
                                                                  const std::optional<at::Tensor>& bias,
                                                                  const std::optional<at::Tensor>& residual, bool relu,
                                                                  double eps);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> output_mask);

// out = act(input*scale + shift + residual) per channel: an eval-mode or folded BatchNorm with its block's tail.
at::Tensor affine_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                           const std::optional<at::Tensor>& shift, const std::optional<at::Tensor>& residual, bool relu);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& scale, bool relu, std::array<bool, 4> output_mask);

// F.batch_norm with the epilogue: in training (or without running statistics) the batch statistics, with the
// running statistics (if given) updated in place as BatchNorm2d does (momentum, unbiased variance); in eval the
// running statistics folded into a scale and shift.
at::Tensor fused_batch_norm(const at::Tensor& input, const std::optional<at::Tensor>& running_mean,
                            const std::optional<at::Tensor>& running_var, const std::optional<at::Tensor>& weight,
                            const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& residual,
                            bool training, double momentum, double eps, bool relu);

}  // namespace leanconv::ops
