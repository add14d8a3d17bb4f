// The block-epilogue kernels' operands, checked and prepared once for the CPU and CUDA kernels alike: inputs made
// contiguous in the input's memory format, per-channel coefficients in the op-math type, outputs allocated.
// A kernel then only runs its passes (cpu/channel_passes.h, cuda/channel_passes.cuh).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>

#include "common/block_epilogue_checks.h"

namespace leanconv::common {

struct BatchNormEpilogueOperands {
  checks::EpilogueInput info;
  at::Tensor x, residual, weight, bias;  // residual, weight, bias undefined when absent
  at::Tensor out, mean, var, invstd;     // outputs
  at::Tensor scale, shift;               // scratch: (C,) in the op-math type
};

BatchNormEpilogueOperands prepare_batch_norm_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& weight,
                                                      const std::optional<at::Tensor>& bias,
                                                      const std::optional<at::Tensor>& residual, double eps);

struct BatchNormEpilogueBackwardOperands {
  checks::EpilogueInput info;
  at::Tensor x, grad, output, weight, mean, invstd, grad_mean, grad_invstd;  // output undefined without relu
  at::Tensor center;                                                        // mean in float64, (C,)
  at::Tensor grad_input, grad_weight, grad_bias, grad_residual;             // undefined where not asked for
  at::Tensor a, b, c0;                                                      // scratch: (C,) op-math type
};

BatchNormEpilogueBackwardOperands prepare_batch_norm_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> output_mask);

struct AffineEpilogueOperands {
  checks::EpilogueInput info;
  at::Tensor x, residual;
  at::Tensor scale, shift;  // (C,) op-math type: given, or ones / zeros
  at::Tensor out;
};

AffineEpilogueOperands prepare_affine_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                                               const std::optional<at::Tensor>& shift,
                                               const std::optional<at::Tensor>& residual);

struct AffineEpilogueBackwardOperands {
  checks::EpilogueInput info;
  at::Tensor x, grad, output;
  at::Tensor scale, zeros;  // (C,) op-math type
  at::Tensor grad_input, grad_scale, grad_shift, grad_residual;
};

AffineEpilogueBackwardOperands prepare_affine_epilogue_backward(const at::Tensor& grad_output,
                                                                const std::optional<at::Tensor>& output,
                                                                const at::Tensor& input,
                                                                const std::optional<at::Tensor>& scale, bool relu,
                                                                std::array<bool, 4> output_mask);

}  // namespace leanconv::common
