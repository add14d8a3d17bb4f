// Autograd of the overlapping-segment (FSNet) ops, registered at the Autograd key.
#include <torch/autograd.h>
#include <torch/library.h>

#include "leanconv/ops.h"

namespace leanconv::autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FilterSummaryWeightFunction : public torch::autograd::Function<FilterSummaryWeightFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& summary, int64_t out_channels,
                               int64_t in_channels, int64_t kernel_h, int64_t kernel_w, int64_t stride) {
    ctx->saved_data["length"] = summary.sym_numel();
    ctx->saved_data["stride"] = stride;
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {ops::filter_summary_weight(summary, out_channels, in_channels, kernel_h, kernel_w, stride)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grad = ops::filter_summary_weight_backward(grad_outputs[0], ctx->saved_data["length"].toSymInt(),
                                                    ctx->saved_data["stride"].toInt());
    return {grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class ShiftedSumFunction : public torch::autograd::Function<ShiftedSumFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& z, int64_t kernel_h, int64_t kernel_w,
                               int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation) {
    ctx->saved_data["kernel_h"] = kernel_h;
    ctx->saved_data["kernel_w"] = kernel_w;
    ctx->saved_data["channel_step"] = channel_step;
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    ctx->saved_data["input_h"] = z.sym_size(2);
    ctx->saved_data["input_w"] = z.sym_size(3);
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {ops::shifted_sum(z, kernel_h, kernel_w, channel_step, stride, padding, dilation)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto& d = ctx->saved_data;
    const std::vector<c10::SymInt> input_size{d["input_h"].toSymInt(), d["input_w"].toSymInt()};
    auto grad = ops::shifted_sum_backward(grad_outputs[0], d["kernel_h"].toInt(), d["kernel_w"].toInt(),
                                          d["channel_step"].toInt(), d["stride"].toIntVector(),
                                          d["padding"].toIntVector(), d["dilation"].toIntVector(), input_size);
    return {grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor filter_summary_weight_autograd(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                          int64_t kernel_h, int64_t kernel_w, int64_t stride) {
  return FilterSummaryWeightFunction::apply(summary, out_channels, in_channels, kernel_h, kernel_w, stride)[0];
}

at::Tensor shifted_sum_autograd(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  return ShiftedSumFunction::apply(z, kernel_h, kernel_w, channel_step, stride, padding, dilation)[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, Autograd, m) {
  m.impl("filter_summary_weight", &filter_summary_weight_autograd);
  m.impl("shifted_sum", &shifted_sum_autograd);
}

}  // namespace leanconv::autograd
