// The C++ family registry (leanconv/nn/conv_families.h): a family registered from its own file alone appears in the
// registry and builds the C++ example's ResNet-20 (examples/fashion_mnist/compact_resnet.h, which names no family),
// and the registry refuses what does not fit: an unknown family or option, a value that is not a number, a second
// family of one name, a compact family that replaces nothing.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "fashion_mnist/compact_resnet.h"
#include "leanconv/nn/conv_families.h"

namespace {

using leanconv::nn::ConvFamily;
using leanconv::nn::ConvSite;
using leanconv::nn::FamilyArguments;
using leanconv::nn::FamilyConvs;
using leanconv::nn::FamilyOption;

// A test-only family: weight = scale[o] * sign[o, c, i, j], C_out learned numbers for a C_out x C_in x k x k conv.
class SignConv2dImpl : public torch::nn::Module {
 public:
  SignConv2dImpl(const ConvSite& site, int64_t seed) : stride_(site.stride), padding_(site.kernel_size / 2) {
    const auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t k = site.kernel_size;
    sign = register_buffer(
        "sign", torch::randint(0, 2, {site.out_channels, site.in_channels, k, k}, generator, torch::kFloat) * 2 - 1);
    scale = register_parameter("scale", torch::full({site.out_channels}, 0.1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::conv2d(x, scale.view({-1, 1, 1, 1}) * sign, {}, stride_, padding_);
  }
  torch::Tensor sign, scale;

 private:
  int64_t stride_, padding_;
};
TORCH_MODULE(SignConv2d);

// Replaces the convs of at least `min_channels` input channels; the others stay dense.
class SignConvs : public FamilyConvs {
 public:
  explicit SignConvs(const FamilyArguments& arguments)
      : seed_(arguments.integer("seed")), min_channels_(arguments.integer("min_channels")) {}
  torch::nn::AnyModule conv(const ConvSite& site) override {
    if (site.in_channels < min_channels_) return {};
    return torch::nn::AnyModule(SignConv2d(site, seed_++));
  }

 private:
  int64_t seed_, min_channels_;
};

// Registered as a family's own file registers it: the one line that makes it a family.
LEANCONV_REGISTER_CONV_FAMILY(sign, ConvFamily{"sign",
                                               {{"seed", "0", "seed of the sign patterns"},
                                                {"min_channels", "1", "the narrowest conv replaced"}},
                                               [](const FamilyArguments& arguments, int64_t) {
                                                 return std::make_unique<SignConvs>(arguments);
                                               }});

int64_t count(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

TEST(ConvFamilies, TheRegistryListsEveryFamilyByNameOnceWithTheTestFamily) {
  std::vector<std::string> names;
  for (const ConvFamily* family : leanconv::nn::conv_families()) names.push_back(family->name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  for (const char* name : {"dense", "filter_summary", "generated", "lowrank", "multigrid", "shared", "sign"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  EXPECT_EQ(&leanconv::nn::conv_family("sign"), &leanconv::nn::conv_family("sign"));
}

TEST(ConvFamilies, AFamilyFromItsOwnFileBuildsTheExampleResNet20) {
  torch::manual_seed(0);
  fashion_mnist::CompactResNet20 dense(fashion_mnist::FamilyChoice{"dense", {}});
  fashion_mnist::CompactResNet20 sign(fashion_mnist::FamilyChoice{"sign", {{"seed", "3"}}});
  EXPECT_EQ(sign->run_name(), "resnet20-sign");
  // Every 3x3 block conv (18 of them, 16..64 channels) is a SignConv2d: its C_out scales replace its weight.
  int64_t block_weights = 0, scales = 0, sign_convs = 0;
  for (const auto& module : sign->modules(/*include_self=*/false))
    if (auto* conv = module->as<SignConv2dImpl>()) {
      ++sign_convs;
      block_weights += conv->sign.numel();
      scales += conv->scale.numel();
    }
  EXPECT_EQ(sign_convs, 18);
  EXPECT_EQ(count(sign->parameters()), count(dense->parameters()) - block_weights + scales);
  const torch::Tensor logits = sign->forward(torch::randn({2, 1, 28, 28}));
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({2, 10}));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST(ConvFamilies, ACompactFamilyThatReplacesNoConvIsRefused) {
  EXPECT_THROW(fashion_mnist::CompactResNet20(fashion_mnist::FamilyChoice{"sign", {{"min_channels", "1000"}}}),
               std::invalid_argument);
}

TEST(ConvFamilies, UnknownFamiliesAndOptionsAndBadNumbersAreRefusedByName) {
  auto message_of = [](auto&& build) {
    try {
      build();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of([] { leanconv::nn::conv_family("tensor_train"); }).find("expected one of dense"),
            std::string::npos);
  const auto& options = leanconv::nn::conv_family("sign").options;
  EXPECT_NE(message_of([&] { FamilyArguments("sign", options, {{"rank", "1"}}); })
                .find("--rank is not an option of conv=sign"),
            std::string::npos);
  EXPECT_NE(message_of([&] { FamilyArguments("sign", options, {{"seed", "two"}}).integer("seed"); })
                .find("--seed takes a number, got 'two'"),
            std::string::npos);
  // An option of more than one word: its flag is the command line's (the example's --help and flags use it too).
  EXPECT_NE(message_of([&] { FamilyArguments("sign", options, {{"ring_size", "1"}}); })
                .find("--ring-size is not an option of conv=sign"),
            std::string::npos);
  EXPECT_EQ(FamilyOption{"min_channels"}.flag(), "--min-channels");
  EXPECT_NE(message_of([&] { FamilyArguments("sign", options, {{"seed", "1.5"}}).integer("seed"); })
                .find("--seed takes a whole number"),
            std::string::npos);
  EXPECT_NE(message_of([&] { FamilyArguments("sign", options, {{"seed", "7x"}}).integer("seed"); })
                .find("takes a number"),
            std::string::npos);
  EXPECT_EQ(FamilyArguments("sign", options, {{"seed", "7"}}).integer("seed"), 7);
  EXPECT_EQ(FamilyArguments("sign", options, {}).integer("min_channels"), 1);  // the default
}

TEST(ConvFamilies, ASecondFamilyOfOneNameIsRefused) {
  EXPECT_THROW(leanconv::nn::register_conv_family(ConvFamily{"sign", {}, nullptr}), std::logic_error);
}

}  // namespace
