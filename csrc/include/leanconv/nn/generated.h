// Generated-weight (RPG) modules for LibTorch programs: one ParameterRing holds the learned parameters;
// GeneratedConv2d and GeneratedLinear draw their weights from it by a fixed permutation and sign flip.
//
// A layer holds the ring without registering it as a submodule: the ring belongs to the model that
// owns the layers (register it there), so the state_dict stores it once and parameters() lists it once.
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <ostream>
#include <vector>

namespace leanconv::nn {

// The reference fan-out of the RPG paper: a 512->512 3x3 conv (leanconv.nn.generated uses the same value).
inline constexpr double kDefaultFanRef = 512.0 * 3 * 3;

struct ParameterRingOptions {
  explicit ParameterRingOptions(int64_t size) : size_(size) {}
  // Number of learned parameters N.
  TORCH_ARG(int64_t, size);
  // Seed of the permutation and the signs.
  TORCH_ARG(int64_t, seed) = 0;
  // Reference fan-out: the ring is initialised Kaiming-normal for it and each layer scales by
  // sqrt(fan_ref / fan_out) so every layer keeps its own Kaiming scale (the default is a 512->512 3x3 conv).
  TORCH_ARG(double, fan_ref) = kDefaultFanRef;
};

class ParameterRingImpl : public torch::nn::Module {
 public:
  explicit ParameterRingImpl(ParameterRingOptions options);
  explicit ParameterRingImpl(int64_t size) : ParameterRingImpl(ParameterRingOptions(size)) {}

  void reset_parameters();

  // Reserves `numel` positions of the virtual weight sequence for a new layer; returns their offset.
  int64_t allocate(int64_t numel);

  // Positions [offset, offset + prod(shape)) of the virtual weight sequence, times `scale`.
  torch::Tensor generate(int64_t offset, at::IntArrayRef shape, double scale) const;

  int64_t seed() const { return options.seed(); }
  int64_t total() const { return total_; }
  int64_t num_learned_params() const { return ring.numel(); }
  void pretty_print(std::ostream& stream) const override;
  // torch::load: the buffers, then the layout they hold becomes the one the ring generates with.
  void load(torch::serialize::InputArchive& archive) override;
  // Takes seed and total from the buffers (after they were overwritten, e.g. from a state_dict).
  void adopt_layout();

  ParameterRingOptions options;
  torch::Tensor ring;          // (N,) learned parameters
  torch::Tensor seed_buffer;   // state_dict "seed"
  torch::Tensor total_buffer;  // state_dict "total"

 private:
  int64_t total_ = 0;
};
TORCH_MODULE(ParameterRing);

struct GeneratedConv2dOptions {
  GeneratedConv2dOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;
};

class GeneratedConv2dImpl : public torch::nn::Module {
 public:
  GeneratedConv2dImpl(ParameterRing ring, GeneratedConv2dOptions options);

  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);
  // The dense equivalent weight (C_out, C_in / groups, kh, kw), differentiable w.r.t. the ring.
  torch::Tensor weight() const;
  std::vector<int64_t> weight_shape() const;
  double scale() const { return scale_; }
  int64_t offset() const { return offset_; }
  int64_t num_learned_params() const { return bias.defined() ? bias.numel() : 0; }
  int64_t num_dense_params() const;
  void pretty_print(std::ostream& stream) const override;
  // torch::load: the buffers, then the offset they hold becomes the one the layer generates from.
  void load(torch::serialize::InputArchive& archive) override;
  void adopt_layout();

  GeneratedConv2dOptions options;
  ParameterRing ring;
  torch::Tensor bias;
  torch::Tensor offset_buffer;  // state_dict "offset"

 private:
  int64_t offset_;
  double scale_;
};
TORCH_MODULE(GeneratedConv2d);

struct GeneratedLinearOptions {
  GeneratedLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
};

class GeneratedLinearImpl : public torch::nn::Module {
 public:
  GeneratedLinearImpl(ParameterRing ring, GeneratedLinearOptions options);

  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);
  torch::Tensor weight() const;
  double scale() const { return scale_; }
  int64_t offset() const { return offset_; }
  int64_t num_learned_params() const { return bias.defined() ? bias.numel() : 0; }
  int64_t num_dense_params() const;
  void pretty_print(std::ostream& stream) const override;
  // torch::load: the buffers, then the offset they hold becomes the one the layer generates from.
  void load(torch::serialize::InputArchive& archive) override;
  void adopt_layout();

  GeneratedLinearOptions options;
  ParameterRing ring;
  torch::Tensor bias;
  torch::Tensor offset_buffer;

 private:
  int64_t offset_;
  double scale_;
};
TORCH_MODULE(GeneratedLinear);

}  // namespace leanconv::nn
