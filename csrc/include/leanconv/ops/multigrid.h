// The multigrid family's ops (docs/multigrid.md): the small-group grouped conv and the choice between its
// kernels and aten's convolution.
// Each function goes through the PyTorch dispatcher, so the CPU, CUDA, autograd and autocast registrations apply
// exactly as they do for torch.ops.leanconv.* from Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace leanconv::ops {

// The grouped conv y = conv2d(input, weight, bias, stride, padding, dilation, groups), computed by leanconv's
// direct kernels: input (N, C_in, H, W), weight (C_out, C_in/groups, kh, kw), bias (C_out) or none. Same numbers
// as at::conv2d (the op-math type accumulates), in the input's memory format.
at::Tensor grouped_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// Gradients of grouped_conv2d with respect to (input, weight), each computed only where output_mask says
// (undefined otherwise). The bias gradient is grad_output summed over (N, H, W).
std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                           const at::Tensor& weight, at::IntArrayRef stride,
                                                           at::IntArrayRef padding, at::IntArrayRef dilation,
                                                           int64_t groups, std::array<bool, 2> output_mask);

// One grouped conv layer as its kernel choice sees it: the device type, the dtype, the memory format, the channels,
// groups, a square kernel and stride, and the input size.
struct GroupedConvShape {
  c10::DeviceType device = c10::DeviceType::CPU;
  c10::ScalarType dtype = c10::ScalarType::Float;
  bool channels_last = false;
  int64_t in_channels = 0, out_channels = 0, groups = 1, kernel = 1, stride = 1, in_h = 0, in_w = 0;

  std::string key() const;  // "cpu float32 nchw 64->64 g2 k3 s1 32x32"
};

// Whether leanconv's kernel (rather than aten's convolution) runs a layer of this shape in forward and backward:
// a choice measured for this shape (record_grouped_conv2d_choice), else the rule fitted to the benchmarks
// (benchmarks/NOTES.md, "Grouped conv").
bool grouped_conv2d_uses_kernel(const GroupedConvShape& shape);

// The rule alone, for shapes nobody measured.
bool grouped_conv2d_rule(const GroupedConvShape& shape);

// Keeps a measured choice for a shape (leanconv.multigrid.tune measures both paths and records the faster one).
void record_grouped_conv2d_choice(const GroupedConvShape& shape, bool use_kernel);

// The recorded choices, as "key: leanconv" or "key: aten" lines in key order.
std::vector<std::string> grouped_conv2d_choices();
void clear_grouped_conv2d_choices();

}  // namespace leanconv::ops

namespace leanconv::ops {

// The multigrid coarse-grid correction z = fine + BN(P(coarse - restricted)): P the grouped 1x1 prolongation
// (C, C_coarse/groups, 1, 1), `restricted` the restriction R(fine) the down pass computed (reused, not
// recomputed), BN as fused_batch_norm (running statistics updated in place in training). The prolongation runs on
// leanconv's grouped kernel when use_kernel, else on aten's convolution; the BatchNorm and the add are one
// block-epilogue pass over the fine feature map.
at::Tensor coarse_grid_correction(const at::Tensor& fine, const at::Tensor& coarse, const at::Tensor& restricted,
                                  const at::Tensor& prolongation, int64_t groups,
                                  const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
                                  const std::optional<at::Tensor>& running_mean,
                                  const std::optional<at::Tensor>& running_var, bool training, double momentum,
                                  double eps, bool use_kernel);

}  // namespace leanconv::ops
