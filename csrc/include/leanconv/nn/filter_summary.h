// Overlapping-segment (FSNet) module for LibTorch programs: every filter of the layer is a window of one
// learned summary vector. Same options, state_dict names and numbers as leanconv.nn.FilterSummaryConv2d.
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace leanconv::nn {

struct FilterSummaryConv2dOptions {
  FilterSummaryConv2dOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(bool, bias) = true;
  // C_in*k*k / s: the summary stride is s = C_in*k*k // compression.
  TORCH_ARG(double, compression) = 9;
  // Fake-quantise the summary to this many bits (2..8) in the forward.
  TORCH_ARG(std::optional<int64_t>, quant_bits) = std::nullopt;
  // "auto", "direct" (1x1 conv + shifted sum) or "gather" (dense weight + conv).
  TORCH_ARG(std::string, path) = "auto";
};

class FilterSummaryConv2dImpl : public torch::nn::Module {
 public:
  explicit FilterSummaryConv2dImpl(FilterSummaryConv2dOptions options);

  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);
  // The summary the forward uses (fake-quantised when quant_bits is set).
  torch::Tensor effective_summary() const;
  // The dense equivalent weight, differentiable w.r.t. the summary.
  torch::Tensor weight() const;
  bool uses_direct_path() const;
  int64_t summary_stride() const { return summary_stride_; }
  int64_t num_learned_params() const;
  int64_t num_dense_params() const;
  void pretty_print(std::ostream& stream) const override;
  // torch::load: refuses a checkpoint quantised to another bit width than options.quant_bits().
  void load(torch::serialize::InputArchive& archive) override;
  // Checks the quant_bits buffer against the options (after it was overwritten, e.g. from a state_dict).
  void check_quant_bits() const;
  // Checks the summary_layout buffer: a summary of equal length from another geometry or compression is refused.
  void check_summary_layout() const;

  FilterSummaryConv2dOptions options;
  torch::Tensor summary;      // (C_out * s,)
  torch::Tensor bias;         // (C_out,) or undefined
  torch::Tensor quant_scale;  // scalar buffer; 0 = from the summary
  torch::Tensor quant_bits;   // int64 scalar buffer: options.quant_bits(), 0 when not quantised
  torch::Tensor summary_layout;  // int64 buffer (C_out, C_in, kh, kw, s): how the summary is read into filters

 private:
  std::vector<int64_t> expected_summary_layout() const;
  int64_t summary_stride_;
};
TORCH_MODULE(FilterSummaryConv2d);

// Symmetric uniform fake quantisation with a straight-through gradient; scale <= 0 means max|x| / qmax.
torch::Tensor fake_quantize(const torch::Tensor& x, int64_t bits, double scale = 0);

}  // namespace leanconv::nn
