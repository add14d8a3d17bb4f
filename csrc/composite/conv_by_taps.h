// aten's convolution, or the same function by taps where the window reaches past int32: strides, paddings or dilated
// kernels near 2^31 and beyond, which oneDNN's 32-bit index arithmetic mishandles (float16 convolutions there end
// the process). By taps, each kernel tap is a strided slice of the image (the output positions that read inside it,
// computed in int64), so only the output is allocated, whatever the padding. Differentiable (out-of-place), for
// the composites' double backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

namespace leanconv::composite {

// Whether a window is one that goes by taps: a stride, padding or dilated kernel span past 2^30.
bool window_goes_by_taps(at::IntArrayRef kernel, at::IntArrayRef stride, at::IntArrayRef padding,
                         at::IntArrayRef dilation);

// at::convolution (not transposed, no output padding), by taps where window_goes_by_taps.
at::Tensor convolution(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// (grad_input, grad_weight) of `convolution` without bias, each only where output_mask says.
std::tuple<at::Tensor, at::Tensor> convolution_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                        const at::Tensor& weight, at::IntArrayRef stride,
                                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                                        int64_t groups, std::array<bool, 2> output_mask);

}  // namespace leanconv::composite
