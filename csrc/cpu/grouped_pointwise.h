// Grouped 1x1 convs on NCHW planes (the V-cycle's restrictions and prolongations): per (image, group) a
// G_out x G_in matrix applied to whole planes, in blocks of pixels that stay in L1, each input value read from
// memory once. The window micro-kernels copy every input row into phased buffers first, and oneDNN reorders NCHW to
// its blocked layout and back: both cost more than the few multiply-adds a value of a narrow 1x1 conv needs.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "common/multigrid.h"

namespace leanconv::cpu {

// A 1x1 conv at stride 1 without padding whose input (and output gradient) are contiguous NCHW.
bool grouped_pointwise_applies(const common::GroupedConv& g, const at::Tensor& input);

at::Tensor grouped_pointwise_forward(const at::Tensor& input, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, const common::GroupedConv& g);

// The weight gradient, in the weight's dtype: each weight's sum over images and pixels in a fixed order (one thread
// owns a filter), so it is deterministic whatever the thread count. The input gradient is a forward with the
// transposed weight.
at::Tensor grouped_pointwise_weight_grad(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& weight, const common::GroupedConv& g);

}  // namespace leanconv::cpu
