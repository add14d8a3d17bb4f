// The CPU shifted sum (leanconv::shifted_sum's CPU kernel, cpu/filter_summary.cpp), called directly by the CPU segment
// conv's channels_last path (cpu/filter_summary_direct.cpp) rather than back through the dispatcher.
#pragma once

#include <ATen/core/Tensor.h>

namespace leanconv::cpu {

at::Tensor shifted_sum_kernel(const at::Tensor& z_in, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation);

}  // namespace leanconv::cpu
