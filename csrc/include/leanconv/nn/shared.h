// Shared-weight (DACNN) modules for LibTorch programs: one anchor weight used by many convs. Same options, state_dict
// names (the anchor's "weight", "bias"; a regulator's "weight") and numbers as leanconv.nn.ConvAnchor,
// AnchoredConv2d and Regulator. Register the anchor on the model that owns its uses; each use keeps a reference.
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <ostream>

namespace leanconv::nn {

struct ConvAnchorOptions {
  explicit ConvAnchorOptions(int64_t channels, torch::ExpandingArray<2> kernel_size = 3)
      : channels_(channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(bool, bias) = false;
};

class ConvAnchorImpl : public torch::nn::Module {
 public:
  explicit ConvAnchorImpl(ConvAnchorOptions options);
  void reset_parameters();
  int64_t num_learned_params() const;
  void pretty_print(std::ostream& stream) const override;

  ConvAnchorOptions options;
  torch::Tensor weight;  // (C, C, kh, kw)
  torch::Tensor bias;    // (C,) or undefined
};
TORCH_MODULE(ConvAnchor);

struct AnchoredConv2dOptions {
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  // Default: kernel_size // 2.
  TORCH_ARG(std::optional<torch::ExpandingArray<2>>, padding) = std::nullopt;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  // The reference code's channel rotation cat(x[:, r:], x[:, :r]) around the use, folded into the anchor.
  TORCH_ARG(int64_t, rotate) = 0;
};

class AnchoredConv2dImpl : public torch::nn::Module {
 public:
  explicit AnchoredConv2dImpl(ConvAnchor anchor, AnchoredConv2dOptions options = {});
  void reset_parameters() {}
  // Loads, then refuses a checkpoint of another rotation (it changes the function, not the parameters).
  void load(torch::serialize::InputArchive& archive) override;
  torch::Tensor forward(const torch::Tensor& input);
  // The anchor with its input channels rotated by options.rotate(): roll(W, r, 1). Differentiable.
  torch::Tensor weight() const;
  torch::ExpandingArray<2> padding() const;
  int64_t num_dense_params() const;
  void pretty_print(std::ostream& stream) const override;

  AnchoredConv2dOptions options;
  ConvAnchor anchor;  // a reference, not a submodule
  torch::Tensor rotate;  // int64 scalar buffer: options.rotate(), in the state_dict as in Python
};
TORCH_MODULE(AnchoredConv2d);

// The unshared 1x1 C x C conv (no bias) of a residual block, applied before the residual add.
class RegulatorImpl : public torch::nn::Module {
 public:
  explicit RegulatorImpl(int64_t channels);
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);

  int64_t channels;
  torch::Tensor weight;  // (C, C, 1, 1)
};
TORCH_MODULE(Regulator);

}  // namespace leanconv::nn
