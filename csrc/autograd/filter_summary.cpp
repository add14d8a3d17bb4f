// Autograd of the overlapping-segment (FSNet) ops, registered at the Autograd key. The filter gather and the
// overlap-add are each other's adjoints, as are the shifted sum and its backward: every op is linear, so its
// derivative is its partner op and gradients of any order, and torch.func, follow (derivatives.h). The direct
// path's fused op, segment_conv2d, is bilinear: its backward is the shifted sum's adjoint and the 1x1 conv's.
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include "autograd/derivatives.h"
#include "leanconv/ops/filter_summary.h"
#include "composite/filter_summary.h"

namespace leanconv::autograd {
namespace {

using torch::autograd::SavedVariable;

at::Tensor filter_summary_weight_autograd(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                          int64_t kernel_h, int64_t kernel_w, int64_t summary_stride) {
  return linear_op(
      "leanconv::FilterSummaryWeightBackward", summary,
      [&](const at::Tensor& f) {
        return ops::filter_summary_weight(f, out_channels, in_channels, kernel_h, kernel_w, summary_stride);
      },
      [&](const at::Tensor& f) -> AdjointNode::Adjoint {
        return [length = f.sym_numel(), summary_stride](const at::Tensor& grad_weight) {
          return ops::filter_summary_weight_backward(grad_weight, length, summary_stride);
        };
      });
}

at::Tensor filter_summary_weight_backward_autograd(const at::Tensor& grad_weight, c10::SymInt length,
                                                   int64_t summary_stride) {
  return linear_op(
      "leanconv::FilterSummaryWeightBackwardBackward", grad_weight,
      [&](const at::Tensor& g) { return ops::filter_summary_weight_backward(g, length, summary_stride); },
      [&](const at::Tensor& g) -> AdjointNode::Adjoint {
        return
            [out = g.size(0), in = g.size(1), kh = g.size(2), kw = g.size(3), summary_stride](const at::Tensor& grad) {
              return ops::filter_summary_weight(grad, out, in, kh, kw, summary_stride);
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

// segment_conv2d is bilinear in (input, segments): y = shifted_sum(conv1x1(input, segments)). Its backward
// is the shifted sum's adjoint followed by the 1x1 conv's backward (aten's, which oneDNN / cuDNN run); both are
// differentiable, so double backward and torch.func follow through the same code.
class SegmentConv2dBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    variable_list result(2);
    const auto& grad_output = grads[0];
    const bool want_input = task_should_compute_output(0), want_segments = task_should_compute_output(1);
    if (!grad_output.defined() || !(want_input || want_segments)) return result;
    const auto input = input_.unpack(), segments = segments_.unpack();
    // Differentiable when a graph is built: the shifted sum's adjoint (an op with its own autograd) and aten's 1x1
    // conv backward.
    const std::array<bool, 2> mask{want_input, want_segments};
    std::tie(result[0], result[1]) =
        builds_graph({grad_output, input, segments})
            ? composite::segment_conv2d_backward_composite(grad_output, input, segments, kernel_h_, kernel_w_,
                                                     channel_step_, stride_, padding_, dilation_, mask)
            : ops::segment_conv2d_backward(grad_output, input, segments, kernel_h_, kernel_w_, channel_step_, stride_,
                                           padding_, dilation_, mask);
    return result;
  }

  std::string name() const override { return "leanconv::SegmentConv2dBackward"; }

  void release_variables() override {
    input_.reset_data();
    segments_.reset_data();
  }

  SavedVariable input_, segments_;
  int64_t kernel_h_ = 0, kernel_w_ = 0, channel_step_ = 0;
  std::vector<int64_t> stride_, padding_, dilation_;
};

at::Tensor segment_conv2d_autograd(const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
                                   int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation) {
  const bool requires_grad = torch::autograd::compute_requires_grad(input, segments);
  at::Tensor output;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    output = ops::segment_conv2d(input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  }
  if (requires_grad) {
    auto node = new_node<SegmentConv2dBackward>(input, segments);
    node->input_ = SavedVariable(input, false);
    node->segments_ = SavedVariable(segments, false);
    node->kernel_h_ = kernel_h;
    node->kernel_w_ = kernel_w;
    node->channel_step_ = channel_step;
    node->stride_ = stride.vec();
    node->padding_ = padding.vec();
    node->dilation_ = dilation.vec();
    torch::autograd::set_history(output, node);
  }
  // Forward mode: linear in each operand, so the tangent is the op of each tangent with the other's primal.
  const auto dx = tangent_of(input), dsegments = tangent_of(segments);
  if (dx.defined() || dsegments.defined()) {
    const auto x = input._fw_primal(0), g = segments._fw_primal(0);
    at::Tensor tangent = at::zeros_like(output);
    const auto apply = [&](const at::Tensor& a, const at::Tensor& b) {
      return ops::segment_conv2d(a, b, kernel_h, kernel_w, channel_step, stride, padding, dilation);
    };
    if (dx.defined()) tangent = tangent.add(apply(dx, g));
    if (dsegments.defined()) tangent = tangent.add(apply(x, dsegments));
    output._set_fw_grad(tangent, /*level=*/0, /*is_inplace_op=*/false);
  }
  return output;
}

std::tuple<at::Tensor, at::Tensor> segment_conv2d_backward_autograd(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
    int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  refuse_graph("segment_conv2d_backward", "segment_conv2d itself, whose double backward goes through aten's 1x1 conv",
               {grad_output, input, segments});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return ops::segment_conv2d_backward(grad_output, input, segments, kernel_h, kernel_w, channel_step, stride, padding,
                                      dilation, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("filter_summary_weight", &filter_summary_weight_autograd);
  m.impl("filter_summary_weight_backward", &filter_summary_weight_backward_autograd);
  m.impl("shifted_sum", &shifted_sum_autograd);
  m.impl("shifted_sum_backward", &shifted_sum_backward_autograd);
  m.impl("segment_conv2d", &segment_conv2d_autograd);
  m.impl("segment_conv2d_backward", &segment_conv2d_backward_autograd);
}

}  // namespace leanconv::autograd
