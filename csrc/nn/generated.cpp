// Generated-weight (RPG) modules for LibTorch programs.
#include "leanconv/nn/generated.h"

#include <ATen/autocast_mode.h>
#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/init.h>

#include <cmath>

#include "common/checks.h"
#include "common/generated.h"
#include "leanconv/ops/generated.h"

namespace leanconv::nn {
namespace {

// The same message in Python (leanconv/nn/generated.py): a layer's input against the ring it draws on.
void check_input_against_ring(const torch::Tensor& input, const torch::Tensor& ring) {
  checks::check_same_device(input, "input", ring, "ring");
  if (!at::autocast::is_autocast_enabled(input.device().type())) {
    checks::check_same_dtype(input, "input", ring, "ring");
  }
}

// PyTorch's default bias initialisation for conv and linear layers.
void init_bias(torch::Tensor& bias, int64_t fan_in) {
  torch::NoGradGuard no_grad;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  bias.uniform_(-bound, bound);
}

}  // namespace

// ---- ParameterRing ------------------------------------------------------------------------------

ParameterRingImpl::ParameterRingImpl(ParameterRingOptions options_) : options(std::move(options_)) {
  TORCH_CHECK(options.size() > 0, "leanconv: ParameterRing size must be positive, got ", options.size());
  TORCH_CHECK(options.fan_ref() > 0, "leanconv: ParameterRing fan_ref must be positive, got ", options.fan_ref());
  ring = register_parameter("ring", torch::empty({options.size()}));
  seed_buffer = register_buffer("seed", torch::tensor(options.seed(), torch::kLong));
  total_buffer = register_buffer("total", torch::tensor(int64_t(0), torch::kLong));
  reset_parameters();
}

void ParameterRingImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  ring.normal_(0.0, std::sqrt(2.0 / options.fan_ref()));
  seed_buffer.fill_(options.seed());
  total_buffer.fill_(total_);
}

void ParameterRingImpl::load(torch::serialize::InputArchive& archive) {
  Module::load(archive);
  adopt_layout();
}

void ParameterRingImpl::adopt_layout() {
  const int64_t total = total_buffer.item<int64_t>();
  TORCH_CHECK(total >= 0 && total <= common::kMaxRingTotal,
              "leanconv: the loaded ParameterRing total must be in [0, 2^62], got ", total);
  total_ = total;
  options.seed(seed_buffer.item<int64_t>());
}

int64_t ParameterRingImpl::allocate(int64_t numel) {
  TORCH_CHECK(numel > 0, "leanconv: a generated layer must have at least one weight, got ", numel);
  TORCH_CHECK(numel <= common::kMaxRingTotal - total_, "leanconv: a ParameterRing serves at most 2^62 weights");
  const int64_t offset = total_;
  total_ += numel;
  total_buffer.fill_(total_);
  return offset;
}

torch::Tensor ParameterRingImpl::generate(int64_t offset, at::IntArrayRef shape, double scale) const {
  return ops::generate_weights(ring, options.seed(), total_, offset, shape, scale);
}

void ParameterRingImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::ParameterRing(size=" << options.size() << ", seed=" << options.seed()
         << ", serves=" << total_ << ")";
}

// ---- GeneratedConv2d ----------------------------------------------------------------------------

GeneratedConv2dImpl::GeneratedConv2dImpl(ParameterRing ring_, GeneratedConv2dOptions options_)
    : options(std::move(options_)), ring(std::move(ring_)) {
  const auto& o = options;
  checks::check_conv_options(o, "GeneratedConv2d", o.groups());
  const auto shape = weight_shape();
  offset_ = ring->allocate(checks::checked_numel(shape));
  offset_buffer = register_buffer("offset", torch::tensor(offset_, torch::kLong));
  const double fan_out = static_cast<double>(o.out_channels() * shape[2] * shape[3]);
  scale_ = std::sqrt(ring->options.fan_ref() / fan_out);
  if (o.bias()) bias = register_parameter("bias", torch::empty({o.out_channels()}));
  reset_parameters();
}

std::vector<int64_t> GeneratedConv2dImpl::weight_shape() const {
  return {options.out_channels(), options.in_channels() / options.groups(), (*options.kernel_size())[0],
          (*options.kernel_size())[1]};
}

namespace {

// An offset from a checkpoint, before it is trusted: the layer's range must fit a virtual weight sequence.
int64_t checked_offset(const torch::Tensor& offset_buffer, int64_t numel) {
  const int64_t offset = offset_buffer.item<int64_t>();
  TORCH_CHECK(offset >= 0 && offset <= common::kMaxRingTotal - numel, "leanconv: the loaded offset ", offset,
              " of a generated layer lies outside any virtual weight sequence [0, 2^62)");
  return offset;
}

}  // namespace

void GeneratedConv2dImpl::load(torch::serialize::InputArchive& archive) {
  Module::load(archive);
  adopt_layout();
}

void GeneratedConv2dImpl::adopt_layout() { offset_ = checked_offset(offset_buffer, checks::checked_numel(weight_shape())); }

void GeneratedConv2dImpl::reset_parameters() {
  offset_buffer.fill_(offset_);
  if (bias.defined()) {
    const auto shape = weight_shape();
    init_bias(bias, shape[1] * shape[2] * shape[3]);
  }
}

torch::Tensor GeneratedConv2dImpl::weight() const { return ring->generate(offset_, weight_shape(), scale_); }

torch::Tensor GeneratedConv2dImpl::forward(const torch::Tensor& input) {
  checks::check_conv_input(input, options.in_channels(), "GeneratedConv2d");
  check_input_against_ring(input, ring->ring);
  namespace F = torch::nn::functional;
  return F::detail::conv2d(input, weight(), bias, options.stride(), options.padding(), options.dilation(),
                           options.groups());
}

int64_t GeneratedConv2dImpl::num_dense_params() const {
  return checks::checked_numel(weight_shape()) + (bias.defined() ? bias.numel() : 0);
}

void GeneratedConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::GeneratedConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", offset=" << offset_ << ")";
}

// ---- GeneratedLinear ----------------------------------------------------------------------------

GeneratedLinearImpl::GeneratedLinearImpl(ParameterRing ring_, GeneratedLinearOptions options_)
    : options(std::move(options_)), ring(std::move(ring_)) {
  TORCH_CHECK(options.in_features() > 0 && options.out_features() > 0,
              "leanconv: GeneratedLinear in_features and out_features must be positive, got ",
              options.in_features(), " and ", options.out_features());
  offset_ = ring->allocate(options.in_features() * options.out_features());
  offset_buffer = register_buffer("offset", torch::tensor(offset_, torch::kLong));
  scale_ = std::sqrt(ring->options.fan_ref() / static_cast<double>(options.out_features()));
  if (options.bias()) bias = register_parameter("bias", torch::empty({options.out_features()}));
  reset_parameters();
}

void GeneratedLinearImpl::load(torch::serialize::InputArchive& archive) {
  Module::load(archive);
  adopt_layout();
}

void GeneratedLinearImpl::adopt_layout() {
  offset_ = checked_offset(offset_buffer, options.in_features() * options.out_features());
}

void GeneratedLinearImpl::reset_parameters() {
  offset_buffer.fill_(offset_);
  if (bias.defined()) init_bias(bias, options.in_features());
}

torch::Tensor GeneratedLinearImpl::weight() const {
  return ring->generate(offset_, {options.out_features(), options.in_features()}, scale_);
}

torch::Tensor GeneratedLinearImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(), "leanconv: GeneratedLinear expects ",
              options.in_features(), " input features in the last dimension, got shape ", input.sizes());
  check_input_against_ring(input, ring->ring);
  return torch::nn::functional::linear(input, weight(), bias);
}

int64_t GeneratedLinearImpl::num_dense_params() const {
  return options.in_features() * options.out_features() + (bias.defined() ? bias.numel() : 0);
}

void GeneratedLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::GeneratedLinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", offset=" << offset_ << ")";
}

}  // namespace leanconv::nn
