// Autograd of the overlapping-segment (FSNet) ops, registered at the Autograd key. The filter gather and the
// overlap-add are each other's adjoints, as are the shifted sum and its backward: every op is linear, so its
// derivative is its partner op and gradients of any order, and torch.func, follow (derivatives.h).
#include <torch/library.h>

#include "autograd/derivatives.h"
#include "leanconv/ops/filter_summary.h"

namespace leanconv::autograd {
namespace {

at::Tensor filter_summary_weight_autograd(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                          int64_t kernel_h, int64_t kernel_w, int64_t stride) {
  return linear_op(
      "leanconv::FilterSummaryWeightBackward", summary,
      [&](const at::Tensor& f) {
        return ops::filter_summary_weight(f, out_channels, in_channels, kernel_h, kernel_w, stride);
      },
      [&](const at::Tensor& f) -> AdjointNode::Adjoint {
        return [length = f.sym_numel(), stride](const at::Tensor& grad_weight) {
          return ops::filter_summary_weight_backward(grad_weight, length, stride);
        };
      });
}

at::Tensor filter_summary_weight_backward_autograd(const at::Tensor& grad_weight, c10::SymInt length,
                                                   int64_t stride) {
  return linear_op(
      "leanconv::FilterSummaryWeightBackwardBackward", grad_weight,
      [&](const at::Tensor& g) { return ops::filter_summary_weight_backward(g, length, stride); },
      [&](const at::Tensor& g) -> AdjointNode::Adjoint {
        return [out = g.size(0), in = g.size(1), kh = g.size(2), kw = g.size(3), stride](const at::Tensor& grad) {
          return ops::filter_summary_weight(grad, out, in, kh, kw, stride);
        };
      });
}

at::Tensor shifted_sum_autograd(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  return linear_op(
      "leanconv::ShiftedSumBackward", z,
      [&](const at::Tensor& t) { return ops::shifted_sum(t, kernel_h, kernel_w, channel_step, stride, padding, dilation); },
      [&](const at::Tensor& t) -> AdjointNode::Adjoint {
        // The forward has checked that z is 4-D.
        return [=, stride = stride.vec(), padding = padding.vec(), dilation = dilation.vec(),
                input_size = std::vector<c10::SymInt>{t.sym_size(2), t.sym_size(3)}](const at::Tensor& grad) {
          return ops::shifted_sum_backward(grad, kernel_h, kernel_w, channel_step, stride, padding, dilation,
                                           input_size);
        };
      });
}

at::Tensor shifted_sum_backward_autograd(const at::Tensor& grad_output, int64_t kernel_h, int64_t kernel_w,
                                         int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                         at::IntArrayRef dilation, c10::SymIntArrayRef input_size) {
  return linear_op(
      "leanconv::ShiftedSumBackwardBackward", grad_output,
      [&](const at::Tensor& g) {
        return ops::shifted_sum_backward(g, kernel_h, kernel_w, channel_step, stride, padding, dilation, input_size);
      },
      [&](const at::Tensor&) -> AdjointNode::Adjoint {
        return [=, stride = stride.vec(), padding = padding.vec(), dilation = dilation.vec()](const at::Tensor& grad) {
          return ops::shifted_sum(grad, kernel_h, kernel_w, channel_step, stride, padding, dilation);
        };
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("filter_summary_weight", &filter_summary_weight_autograd);
  m.impl("filter_summary_weight_backward", &filter_summary_weight_backward_autograd);
  m.impl("shifted_sum", &shifted_sum_autograd);
  m.impl("shifted_sum_backward", &shifted_sum_backward_autograd);
}

}  // namespace leanconv::autograd
