// Low-rank (DeCEF) module for LibTorch programs: each input channel's filters are spanned by `rank` learned
// basis filters. Same options, state_dict names (basis, coeff, bias) and numbers as leanconv.nn.EigenConv2d.
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <ostream>
#include <string>

namespace leanconv::nn {

struct EigenConv2dOptions {
  EigenConv2dOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<2> kernel_size, int64_t rank)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), rank_(rank) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  // Basis filters per input channel, 1..kh*kw.
  TORCH_ARG(int64_t, rank);
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(bool, bias) = true;
  // "auto", "fused" (leanconv::ops::eigen_conv2d) or "materialized" (dense weight + conv).
  TORCH_ARG(std::string, path) = "auto";
};

class EigenConv2dImpl : public torch::nn::Module {
 public:
  explicit EigenConv2dImpl(EigenConv2dOptions options);

  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);
  // The dense equivalent weight (C_out, C_in, kh, kw), differentiable w.r.t. basis and coeff.
  torch::Tensor weight() const;
  // "fused" or "materialized": the path a forward on this device type takes.
  std::string chosen_path(c10::DeviceType device) const;
  int64_t num_learned_params() const;
  int64_t num_dense_params() const;
  void pretty_print(std::ostream& stream) const override;

  EigenConv2dOptions options;
  torch::Tensor basis;  // (C_in, R, kh, kw)
  torch::Tensor coeff;  // (C_out, C_in*R)
  torch::Tensor bias;   // (C_out,) or undefined
};
TORCH_MODULE(EigenConv2d);

}  // namespace leanconv::nn
