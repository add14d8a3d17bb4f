// Shared-weight (DACNN) modules for LibTorch programs.
#include "leanconv/nn/shared.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/init.h>

#include <cmath>

#include "common/checks.h"

namespace leanconv::nn {
namespace {

// nn.Conv2d's default initialisation (kaiming_uniform_ with a = sqrt(5)), as the Python modules use.
void init_like_conv(torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

}  // namespace

ConvAnchorImpl::ConvAnchorImpl(ConvAnchorOptions options_) : options(std::move(options_)) {
  const auto& k = *options.kernel_size();
  TORCH_CHECK(options.channels() > 0, "leanconv: ConvAnchor channels must be a positive int, got ", options.channels());
  TORCH_CHECK(k[0] > 0 && k[1] > 0, "leanconv: ConvAnchor kernel_size must be positive, got ", options.kernel_size());
  weight = register_parameter("weight", torch::empty({options.channels(), options.channels(), k[0], k[1]}));
  if (options.bias()) bias = register_parameter("bias", torch::empty({options.channels()}));
  reset_parameters();
}

void ConvAnchorImpl::reset_parameters() {
  init_like_conv(weight);
  if (bias.defined()) {
    torch::NoGradGuard no_grad;
    const auto& k = *options.kernel_size();
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.channels() * k[0] * k[1]));
    bias.uniform_(-bound, bound);
  }
}

int64_t ConvAnchorImpl::num_learned_params() const { return weight.numel() + (bias.defined() ? bias.numel() : 0); }

void ConvAnchorImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::ConvAnchor(" << options.channels() << ", kernel_size=" << options.kernel_size()
         << ", bias=" << options.bias() << ")";
}

AnchoredConv2dImpl::AnchoredConv2dImpl(ConvAnchor anchor_, AnchoredConv2dOptions options_)
    : options(std::move(options_)), anchor(std::move(anchor_)) {
  const int64_t c = anchor->options.channels();
  const auto p = padding();
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK((*options.stride())[i] > 0 && (*options.dilation())[i] > 0 && (*p)[i] >= 0,
                "leanconv: AnchoredConv2d kernel_size, stride and dilation must be positive and padding non-negative");
  }
  TORCH_CHECK(options.rotate() >= 0 && options.rotate() < c, "leanconv: rotate must be an int in [0, ", c, "), got ",
              options.rotate());
  rotate = register_buffer("rotate", torch::tensor(options.rotate(), torch::kLong));
}

void AnchoredConv2dImpl::load(torch::serialize::InputArchive& archive) {
  Module::load(archive);
  const int64_t stored = rotate.item<int64_t>();
  TORCH_CHECK(stored == options.rotate(), "leanconv: rotate: the checkpoint's AnchoredConv2d rotates by ", stored,
              " channels, this layer by ", options.rotate(), ": build it with rotate(", stored, ") to load it");
}

torch::ExpandingArray<2> AnchoredConv2dImpl::padding() const {
  if (options.padding()) return *options.padding();
  const auto& k = *anchor->options.kernel_size();
  return torch::ExpandingArray<2>({k[0] / 2, k[1] / 2});
}

torch::Tensor AnchoredConv2dImpl::weight() const {
  return options.rotate() ? torch::roll(anchor->weight, {options.rotate()}, {1}) : anchor->weight;
}

torch::Tensor AnchoredConv2dImpl::forward(const torch::Tensor& input) {
  checks::check_conv_input(input, anchor->options.channels(), "AnchoredConv2d");
  checks::check_same_device(input, "input", anchor->weight, "anchor");
  checks::check_same_dtype(input, "input", anchor->weight, "anchor");
  // The rotation goes to the smaller operand: the anchor (C*C*k*k values) or the activations (N*C*H*W), which
  // give the same output (leanconv/nn/shared.py says why both).
  const bool rotate_input = options.rotate() && input.numel() < anchor->weight.numel();
  return torch::nn::functional::detail::conv2d(rotate_input ? torch::roll(input, {-options.rotate()}, {-3}) : input,
                                               rotate_input ? anchor->weight : weight(), anchor->bias,
                                               options.stride(), padding(), options.dilation(), 1);
}

int64_t AnchoredConv2dImpl::num_dense_params() const {
  const int64_t c = anchor->options.channels();
  const auto& k = *anchor->options.kernel_size();
  return c * c * k[0] * k[1] + (anchor->bias.defined() ? c : 0);
}

void AnchoredConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::AnchoredConv2d(" << anchor->options.channels() << ", stride=" << options.stride()
         << ", padding=" << padding() << ", rotate=" << options.rotate() << ", shared)";
}

RegulatorImpl::RegulatorImpl(int64_t channels_) : channels(channels_) {
  TORCH_CHECK(channels > 0, "leanconv: Regulator channels must be positive, got ", channels);
  weight = register_parameter("weight", torch::empty({channels, channels, 1, 1}));
  reset_parameters();
}

void RegulatorImpl::reset_parameters() { init_like_conv(weight); }

torch::Tensor RegulatorImpl::forward(const torch::Tensor& input) {
  checks::check_conv_input(input, channels, "Regulator");
  return torch::conv2d(input, weight);
}

}  // namespace leanconv::nn
