// Multigrid-in-channels (MGIC) modules for LibTorch programs (docs/multigrid.md): a V-cycle of grouped convs over
// channel levels c, c/2, ... Same options, state_dict names and numbers as leanconv.nn.GroupedConv2d,
// MultigridConv2d and MultigridBlock.
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace leanconv::nn {

// The V-cycle's widths: `channels`, halved while the width is a multiple of group_size and the half at least
// `coarsest` (the rules and errors of leanconv.nn.multigrid.channel_levels).
std::vector<int64_t> channel_levels(int64_t channels, int64_t group_size, int64_t coarsest);

struct GroupedConv2dOptions {
  GroupedConv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, padding) = 0;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;  // as nn.Conv2d
  // "auto" (the per-shape choice, leanconv::ops::grouped_conv2d_uses_kernel), "kernel" or "aten".
  TORCH_ARG(std::string, path) = "auto";
};

// A grouped conv (weight (C_out, C_in/groups, k, k), as torch::nn::Conv2d) run on leanconv's small-group kernel
// where that is faster for the shape, else on aten's convolution: the levels' grouped convs and the coarsest
// level's full convs (groups 1).
class GroupedConv2dImpl : public torch::nn::Module {
 public:
  explicit GroupedConv2dImpl(GroupedConv2dOptions options);
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);
  bool uses_kernel(const torch::Tensor& input) const;
  void pretty_print(std::ostream& stream) const override;

  GroupedConv2dOptions options;
  torch::Tensor weight, bias;
};
TORCH_MODULE(GroupedConv2d);

// The options of both multigrid modules (a V-cycle's), under each module's name: MultigridConv2dOptions,
// MultigridBlockOptions (kernel_size is the block's 3 whatever is set).
struct VCycleOptions {
  VCycleOptions(int64_t in_channels, int64_t channels) : in_channels_(in_channels), channels_(channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, channels);  // the output width
  TORCH_ARG(int64_t, kernel_size) = 3;
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, group_size) = 32;
  // 16: the coarsest level the authors' default full-conv threshold (-fcc 32) gives.
  TORCH_ARG(int64_t, coarsest) = 16;
};
using MultigridConv2dOptions = VCycleOptions;
using MultigridBlockOptions = VCycleOptions;

// What MultigridConv2d and MultigridBlock share: the entry conv, the restrictions, the corrections.
class VCycle : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& input);
  int64_t num_learned_params() const;
  virtual int64_t num_dense_params() const = 0;
  // The authors' initialisation: every conv Kaiming-normal (fan_out, ReLU gain), every BatchNorm reset.
  void reset_parameters();

  VCycleOptions options;
  std::vector<int64_t> levels;

 protected:
  explicit VCycle(VCycleOptions options);
  virtual torch::Tensor coarsest_level(const torch::Tensor& x) = 0;
  virtual torch::Tensor smooth(size_t level, const torch::Tensor& z) = 0;
  GroupedConv2d grouped(int64_t in, int64_t out, int64_t kernel, int64_t groups) const;

  torch::nn::ModuleList entry{nullptr}, restrict{nullptr}, prolong{nullptr}, correction_bn{nullptr};
};

// The drop-in for one k x k conv (padding k/2): a full conv + BN + ReLU at the coarsest level, a grouped conv + BN +
// ReLU per level up, and the finest level's grouped conv last, alone (level_bn[0] is an Identity): the host's
// BatchNorm and ReLU follow. As leanconv.nn.MultigridConv2d(in_channels, channels, kernel_size, stride,
// group_size=, coarsest=).
class MultigridConv2dImpl : public VCycle {
 public:
  explicit MultigridConv2dImpl(MultigridConv2dOptions options);
  int64_t num_dense_params() const override;
  void pretty_print(std::ostream& stream) const override;

 private:
  torch::Tensor coarsest_level(const torch::Tensor& x) override;
  torch::Tensor smooth(size_t level, const torch::Tensor& z) override;
  GroupedConv2d coarse_conv{nullptr};  // a full conv (groups 1), on the kernel where its few channels want it
  torch::nn::BatchNorm2d coarse_bn{nullptr};
  torch::nn::ModuleList level_conv{nullptr}, level_bn{nullptr};
};
TORCH_MODULE(MultigridConv2d);

// The MGIC ResNet block: a full residual block at the coarsest level, a grouped one per level up. As
// leanconv.nn.MultigridBlock(in_channels, channels, stride, group_size, coarsest); kernel_size is 3.
class MultigridBlockImpl : public VCycle {
 public:
  explicit MultigridBlockImpl(MultigridBlockOptions options);
  int64_t num_dense_params() const override;
  void pretty_print(std::ostream& stream) const override;

 private:
  torch::Tensor coarsest_level(const torch::Tensor& x) override;
  torch::Tensor smooth(size_t level, const torch::Tensor& z) override;
  GroupedConv2d coarse_conv1{nullptr}, coarse_conv2{nullptr};  // full convs (groups 1), as coarse_conv above
  torch::nn::BatchNorm2d coarse_bn1{nullptr}, coarse_bn2{nullptr};
  torch::nn::ModuleList level_conv1{nullptr}, level_bn1{nullptr}, level_conv2{nullptr}, level_bn2{nullptr};
};
TORCH_MODULE(MultigridBlock);

}  // namespace leanconv::nn
