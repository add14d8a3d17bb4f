// ResNet-20 (He et al. 2016, the CIFAR layout: a 3x3 stem, 3 stages of 3 basic blocks at widths 16/32/64, the
// parameter-free "option A" shortcut) whose block convs come from one leanconv family, as
// leanconv.models.resnet20(conv=...) builds it in Python: the stem, the BatchNorms and the classifier stay ordinary.
// The family is looked up by name in leanconv's C++ family registry (leanconv/nn/conv_families.h), so this file names
// none: a family whose unit is the block (multigrid) gives whole blocks, and the model is that family's network.
#pragma once

#include <leanconv/leanconv.h>
#include <torch/torch.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace fashion_mnist {

// The family and its options by leanconv.families' names (the flags of python -m leanconv.train of the same names).
struct FamilyChoice {
  std::string family = "dense";
  std::map<std::string, std::string> options;  // e.g. {"ring_size", "0.1"}; the family's defaults for the rest
};

class BasicBlockImpl : public torch::nn::Module {
 public:
  // `replaced` counts the convs the family made (not kept dense).
  BasicBlockImpl(leanconv::nn::FamilyConvs& convs, int64_t in, int64_t out, int64_t stride, int64_t stage,
                 int64_t& replaced)
      : stride_(stride), pad_(out - in) {
    conv1_ = conv_of(convs, {in, out, 3, stride, stage}, replaced);
    register_module("conv1", conv1_.ptr());
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
    conv2_ = conv_of(convs, {out, out, 3, 1, stage}, replaced);
    register_module("conv2", conv2_.ptr());
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::relu(bn1->forward(conv1_.forward(x)));
    y = bn2->forward(conv2_.forward(y));
    torch::Tensor identity = x;
    if (stride_ != 1 || pad_ != 0)  // option A: subsample, zero-pad the new channels on both sides
      identity = torch::constant_pad_nd(x.slice(2, 0, c10::nullopt, stride_).slice(3, 0, c10::nullopt, stride_),
                                        {0, 0, 0, 0, pad_ / 2, pad_ - pad_ / 2});
    return torch::relu(y + identity);
  }

  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};

 private:
  // The family's conv for the site, or the dense one where the family keeps it.
  static torch::nn::AnyModule conv_of(leanconv::nn::FamilyConvs& convs, const leanconv::nn::ConvSite& site,
                                      int64_t& replaced) {
    torch::nn::AnyModule made = convs.conv(site);
    if (!made.is_empty()) return ++replaced, made;
    return torch::nn::AnyModule(torch::nn::Conv2d(torch::nn::Conv2dOptions(site.in_channels, site.out_channels, 3)
                                                      .stride(site.stride)
                                                      .padding(1)
                                                      .bias(false)));
  }

  torch::nn::AnyModule conv1_, conv2_;  // the family's convs (registered as "conv1", "conv2")
  int64_t stride_, pad_;
};
TORCH_MODULE(BasicBlock);

class CompactResNet20Impl : public torch::nn::Module {
 public:
  CompactResNet20Impl(const FamilyChoice& choice, int64_t in_channels = 1, int64_t num_classes = 10)
      : family_(leanconv::nn::conv_family(choice.family)) {
    const std::vector<int64_t> widths{16, 32, 64};
    const leanconv::nn::FamilyArguments arguments(family_.name, family_.options, choice.options);
    auto convs = family_.make(arguments, block_conv_weights(widths));
    stem = register_module("stem", torch::nn::Sequential(
                                       torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, 16, 3).padding(1).bias(false)),
                                       torch::nn::BatchNorm2d(16), torch::nn::ReLU()));
    blocks = register_module("blocks", torch::nn::Sequential());
    int64_t in = widths[0], replaced = 0;
    for (int64_t stage = 0; stage < 3; ++stage)
      for (int64_t b = 0; b < 3; ++b) {
        const int64_t stride = stage > 0 && b == 0 ? 2 : 1;
        torch::nn::AnyModule block = convs->block(in, widths[stage], stride);
        if (!block.is_empty()) {
          blocks->push_back(block);
          ++replaced;
        } else {
          blocks->push_back(BasicBlock(*convs, in, widths[stage], stride, stage, replaced));
        }
        in = widths[stage];
      }
    // Options under which a compact family replaces nothing would silently give the dense model.
    if (family_.compact && replaced == 0)
      throw std::invalid_argument("conv=" + family_.name + " with these options replaces none of ResNet-20's convs");
    fc = register_module("fc", torch::nn::Linear(widths.back(), num_classes));
    convs->finish(*this);
  }

  // The run's name as python -m leanconv.train names it: <network>-<family>.
  std::string run_name() const { return family_.network + "-" + family_.name; }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = blocks->forward(stem->forward(x));
    return fc->forward(torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1));
  }

  torch::nn::Sequential stem{nullptr}, blocks{nullptr};
  torch::nn::Linear fc{nullptr};

 private:
  const leanconv::nn::ConvFamily& family_;

  // The 3x3 block convs' dense weights: what a generated ring of ring_size serves.
  static int64_t block_conv_weights(const std::vector<int64_t>& widths) {
    int64_t total = 0, in = widths[0];
    for (int64_t w : widths)
      for (int b = 0; b < 3; ++b) {
        total += (in * w + w * w) * 9;
        in = w;
      }
    return total;
  }
};
TORCH_MODULE(CompactResNet20);

}  // namespace fashion_mnist
