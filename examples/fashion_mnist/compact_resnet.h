// ResNet-20 (He et al. 2016, the CIFAR layout: a 3x3 stem, 3 stages of 3 basic blocks at widths 16/32/64, the
// parameter-free "option A" shortcut) whose block convs come from one leanconv family, as
// leanconv.models.resnet20(conv=...) builds it in Python: the stem, the BatchNorms and the classifier stay ordinary.
// The multigrid family replaces whole blocks, not convs: its model is the MGIC ResNet-20, each block a
// leanconv::nn::MultigridBlock V-cycle (leanconv.models.mgic_resnet(widths=(16, 32, 64), blocks=(3, 3, 3)) in
// Python, the network the family's tables use).
#pragma once

#include <leanconv/leanconv.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace fashion_mnist {

// The family and its options (the flags of python -m leanconv.train of the same names).
struct FamilyOptions {
  std::string family = "dense";  // dense, generated, filter_summary, lowrank, shared, multigrid
  double ring_size = 0.1;        // generated: ring parameters as a fraction of the weights the ring serves
  double compression = 10;       // filter_summary: C_in*k*k / s
  int64_t rank = 1;              // lowrank: basis filters per input channel
  int64_t group_size = 2;        // multigrid (the MGIC ResNet-20's blocks): channels per group
  int64_t coarsest = 2;          // multigrid: the narrowest channel level
};

inline const std::vector<std::string>& family_names() {
  static const std::vector<std::string> names{"dense", "generated", "filter_summary", "lowrank", "shared", "multigrid"};
  return names;
}

// Makes one k x k block conv (bias-free, padding k/2) of the chosen family; the model registers what layers share.
class ConvFactory {
 public:
  ConvFactory(FamilyOptions options, int64_t ring_weights) : options_(std::move(options)) {
    const auto& names = family_names();
    if (std::find(names.begin(), names.end(), options_.family) == names.end())
      throw std::invalid_argument("unknown family '" + options_.family + "'");
    if (options_.family == "generated") {
      if (!(options_.ring_size > 0 && options_.ring_size <= 1))
        throw std::invalid_argument("--ring-size must be in (0, 1], got " + std::to_string(options_.ring_size));
      ring_ = leanconv::nn::ParameterRing(std::max<int64_t>(1, std::llround(options_.ring_size * ring_weights)));
    }
  }

  torch::nn::AnyModule conv(int64_t in, int64_t out, int64_t stride, int64_t stage) {
    torch::nn::AnyModule made = make(in, out, stride, stage);
    if (made.type_info() != typeid(torch::nn::Conv2dImpl)) ++replaced_;
    return made;
  }

  // Refuses options under which the family replaces no conv at all (the model would silently be the dense one).
  void check_replaced_some() const {
    if (options_.family != "dense" && replaced_ == 0)
      throw std::invalid_argument("conv=" + options_.family + " with these options replaces none of ResNet-20's convs");
  }

  // What the layers share, for the model to register once: the ring, the anchors.
  leanconv::nn::ParameterRing ring() const { return ring_; }
  const std::map<int64_t, leanconv::nn::ConvAnchor>& anchors() const { return anchors_; }

 private:
  torch::nn::AnyModule make(int64_t in, int64_t out, int64_t stride, int64_t stage) {
    namespace lnn = leanconv::nn;
    const std::string& f = options_.family;
    if (f == "generated")
      return torch::nn::AnyModule(lnn::GeneratedConv2d(
          ring_, lnn::GeneratedConv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    if (f == "filter_summary" && in * 9 >= options_.compression)  // shorter filters stay dense, as in Python
      return torch::nn::AnyModule(lnn::FilterSummaryConv2d(
          lnn::FilterSummaryConv2dOptions(in, out, 3).stride(stride).padding(1).bias(false).compression(
              options_.compression)));
    if (f == "lowrank")
      return torch::nn::AnyModule(
          lnn::EigenConv2d(lnn::EigenConv2dOptions(in, out, 3, std::min<int64_t>(options_.rank, 9))
                               .stride(stride).padding(1).bias(false)));
    if (f == "shared" && in == out) {  // one anchor per stage for its C -> C convs; the width-changing ones stay dense
      auto [anchor, fresh] = anchors_.try_emplace(stage, nullptr);
      if (fresh) anchor->second = lnn::ConvAnchor(lnn::ConvAnchorOptions(in, 3));
      return torch::nn::AnyModule(lnn::AnchoredConv2d(anchor->second, lnn::AnchoredConv2dOptions().stride(stride)));
    }
    // dense, and the convs a family keeps dense
    return torch::nn::AnyModule(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
  }

  FamilyOptions options_;
  leanconv::nn::ParameterRing ring_{nullptr};
  std::map<int64_t, leanconv::nn::ConvAnchor> anchors_;
  int64_t replaced_ = 0;
};

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(ConvFactory& convs, int64_t in, int64_t out, int64_t stride, int64_t stage)
      : stride_(stride), pad_(out - in) {
    conv1_ = convs.conv(in, out, stride, stage);
    register_module("conv1", conv1_.ptr());
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
    conv2_ = convs.conv(out, out, 1, stage);
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
  torch::nn::AnyModule conv1_, conv2_;  // the family's convs (registered as "conv1", "conv2")
  int64_t stride_, pad_;
};
TORCH_MODULE(BasicBlock);

class CompactResNet20Impl : public torch::nn::Module {
 public:
  CompactResNet20Impl(const FamilyOptions& family, int64_t in_channels = 1, int64_t num_classes = 10) {
    const std::vector<int64_t> widths{16, 32, 64};
    ConvFactory convs(family, block_conv_weights(widths));
    stem = register_module("stem", torch::nn::Sequential(
                                       torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, 16, 3).padding(1).bias(false)),
                                       torch::nn::BatchNorm2d(16), torch::nn::ReLU()));
    blocks = register_module("blocks", torch::nn::Sequential());
    int64_t in = widths[0];
    const bool mgic = family.family == "multigrid";
    for (int64_t stage = 0; stage < 3; ++stage)
      for (int64_t b = 0; b < 3; ++b) {
        const int64_t stride = stage > 0 && b == 0 ? 2 : 1;
        if (mgic) {
          blocks->push_back(leanconv::nn::MultigridBlock(leanconv::nn::MultigridBlockOptions(in, widths[stage])
                                                             .stride(stride)
                                                             .group_size(family.group_size)
                                                             .coarsest(family.coarsest)));
        } else {
          blocks->push_back(BasicBlock(convs, in, widths[stage], stride, stage));
        }
        in = widths[stage];
      }
    if (!mgic) convs.check_replaced_some();
    fc = register_module("fc", torch::nn::Linear(widths.back(), num_classes));
    if (!convs.ring().is_empty()) register_module("ring", convs.ring());
    for (const auto& [stage, anchor] : convs.anchors()) register_module("anchor" + std::to_string(stage), anchor);
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = blocks->forward(stem->forward(x));
    return fc->forward(torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1));
  }

  torch::nn::Sequential stem{nullptr}, blocks{nullptr};
  torch::nn::Linear fc{nullptr};

 private:
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
