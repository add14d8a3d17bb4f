// The multigrid C++ API: the grouped conv op against torch::conv2d (values and gradients, float64), the
// V-cycle modules' structure (levels, parameter growth, a training step, state_dict names), the errors, and
// CUDA against CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "leanconv/leanconv.h"

namespace {

using leanconv::nn::MultigridBlock;
using leanconv::nn::MultigridConv2d;
using leanconv::nn::MultigridBlockOptions;
using leanconv::nn::MultigridConv2dOptions;

TEST(Multigrid, GroupedConvMatchesConv2dWithGradients) {
  torch::manual_seed(0);
  for (const int64_t group_width : {4, 8, 16}) {
    for (const int64_t kernel : {1, 3}) {
      for (const int64_t stride : {1, 2}) {
        const int64_t channels = 4 * group_width, groups = 4;
        auto x = torch::randn({2, channels, 7, 9}, torch::kDouble).requires_grad_();
        auto w = torch::randn({channels, group_width, kernel, kernel}, torch::kDouble).requires_grad_();
        const std::vector<int64_t> s{stride, stride}, p{kernel / 2, kernel / 2}, d{1, 1};
        auto y = leanconv::ops::grouped_conv2d(x, w, std::nullopt, s, p, d, groups);
        auto expected = torch::conv2d(x, w, {}, s, p, d, groups);
        EXPECT_TRUE(torch::allclose(y, expected, 1e-12, 1e-12));
        auto grad = torch::randn_like(y);
        auto ours = torch::autograd::grad({y}, {x, w}, {grad});
        auto theirs = torch::autograd::grad({expected}, {x, w}, {grad});
        EXPECT_TRUE(torch::allclose(ours[0], theirs[0], 1e-12, 1e-12));
        EXPECT_TRUE(torch::allclose(ours[1], theirs[1], 1e-12, 1e-12));
      }
    }
  }
}

TEST(Multigrid, LevelsAndLinearParameterGrowth) {
  EXPECT_EQ(leanconv::nn::channel_levels(256, 32, 32), (std::vector<int64_t>{256, 128, 64, 32}));
  EXPECT_EQ(leanconv::nn::channel_levels(96, 32, 32), (std::vector<int64_t>{96, 48}));
  const auto params = [](int64_t width) {
    return MultigridBlock(MultigridBlockOptions(width, width).group_size(16).coarsest(16))->num_learned_params();
  };
  for (const int64_t width : {128, 256}) {
    const double ratio = double(params(2 * width)) / double(params(width));
    EXPECT_GT(ratio, 1.6);
    EXPECT_LT(ratio, 2.3);
  }
}

TEST(Multigrid, ATrainingStepUpdatesEveryParameterAndStatistic) {
  torch::manual_seed(1);
  MultigridBlock block(MultigridBlockOptions(16, 32).stride(2).group_size(8).coarsest(8));
  MultigridConv2d conv(MultigridConv2dOptions(32, 32).group_size(8).coarsest(8));
  auto x = torch::randn({4, 16, 8, 8});
  auto y = conv->forward(block->forward(x));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 32, 4, 4}));
  y.square().sum().backward();
  for (auto* module : {static_cast<torch::nn::Module*>(block.get()), static_cast<torch::nn::Module*>(conv.get())}) {
    for (const auto& p : module->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
    for (const auto& b : module->named_buffers()) {
      if (b.key().find("num_batches_tracked") != std::string::npos) EXPECT_EQ(b.value().item<int64_t>(), 1) << b.key();
    }
  }
  block->eval();
  auto a = block->forward(x), b = block->forward(x);
  EXPECT_TRUE(torch::equal(a, b));  // eval: running statistics, no update
}

TEST(Multigrid, StateDictNamesFollowThePythonModule) {
  MultigridBlock block(MultigridBlockOptions(16, 32).stride(2).group_size(8).coarsest(8));
  std::vector<std::string> names;
  for (const auto& p : block->named_parameters()) names.push_back(p.key());
  for (const std::string expected : {"entry.0.weight", "entry.1.weight", "restrict.0.weight", "prolong.0.weight",
                                     "correction_bn.0.bias", "coarse_conv1.weight", "coarse_bn2.weight",
                                     "level_conv1.0.weight", "level_bn2.1.bias"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
}

TEST(Multigrid, TheDropInEndsInItsFinestConvAndStartsAsTheAuthorsInitialiseIt) {
  // The host block's BatchNorm and ReLU follow a drop-in conv: its finest level ends in the grouped conv alone.
  MultigridConv2d conv(MultigridConv2dOptions(32, 32).group_size(8).coarsest(8));
  EXPECT_LT(conv->forward(torch::randn({2, 32, 6, 6})).min().item<double>(), 0.0);  // no ReLU last
  // Every conv Kaiming-normal with fan_out: std sqrt(2 / (out * k * k)), here the 32 -> 32 3x3 level conv.
  for (const auto& item : conv->named_parameters()) {
    if (item.key() == "level_conv.0.weight") {
      EXPECT_NEAR(item.value().std().item<double>(), std::sqrt(2.0 / (32 * 9)), 0.15 * std::sqrt(2.0 / (32 * 9)));
    }
  }
}

TEST(Multigrid, ClearErrors) {
  EXPECT_THROW(MultigridBlock(MultigridBlockOptions(64, 80).group_size(32)), c10::Error);  // 80 % 32
  EXPECT_THROW(MultigridBlock(MultigridBlockOptions(64, 64).group_size(0)), c10::Error);
  EXPECT_THROW(MultigridBlock(MultigridBlockOptions(64, 64).coarsest(128)), c10::Error);
  // Options that leave one level (no multigrid structure, only a dense conv) and an even kernel are refused.
  EXPECT_THROW(MultigridConv2d(MultigridConv2dOptions(60, 60).group_size(16).coarsest(32)), c10::Error);
  EXPECT_THROW(MultigridBlock(MultigridBlockOptions(16, 16).group_size(16).coarsest(16)), c10::Error);
  EXPECT_THROW(MultigridConv2d(MultigridConv2dOptions(8, 8).kernel_size(2).group_size(2).coarsest(2)), c10::Error);
  MultigridBlock block(MultigridBlockOptions(16, 16).group_size(8).coarsest(8));
  EXPECT_THROW(block->forward(torch::randn({2, 8, 4, 4})), c10::Error);
  const auto x = torch::randn({1, 8, 5, 5});
  EXPECT_THROW(leanconv::ops::grouped_conv2d(x, torch::randn({9, 2, 3, 3}), std::nullopt, {1, 1}, {1, 1}, {1, 1}, 3),
               c10::Error);
  EXPECT_THROW(leanconv::ops::grouped_conv2d(x, torch::randn({8, 4, 3, 3}, torch::kDouble), std::nullopt, {1, 1},
                                             {1, 1}, {1, 1}, 2),
               c10::Error);
  EXPECT_THROW(leanconv::ops::coarse_grid_correction(torch::randn({2, 16, 4, 4}), torch::randn({2, 8, 4, 4}),
                                                     torch::randn({2, 4, 4, 4}), torch::randn({16, 4, 1, 1}), 2,
                                                     std::nullopt, std::nullopt, std::nullopt, std::nullopt, true,
                                                     0.1, 1e-5, true),
               c10::Error);
}

TEST(Multigrid, CpuAndCudaAgree_CUDA) {
  torch::manual_seed(2);
  auto x = torch::randn({3, 32, 13, 11}, torch::kDouble);
  auto w = torch::randn({64, 8, 3, 3}, torch::kDouble);
  const std::vector<int64_t> s{2, 2}, p{1, 1}, d{1, 1};
  auto expected = torch::conv2d(x, w, {}, s, p, d, 4);
  for (const auto dtype : {torch::kDouble, torch::kFloat}) {
    auto y = leanconv::ops::grouped_conv2d(x.to(dtype).cuda(), w.to(dtype).cuda(), std::nullopt, s, p, d, 4).cpu();
    EXPECT_TRUE(torch::allclose(y.to(torch::kDouble), expected, 1e-4, 1e-4));
  }
  MultigridBlock block(MultigridBlockOptions(32, 64).stride(2).group_size(8).coarsest(8));
  block->to(torch::kDouble);
  auto y_cpu = block->forward(x);
  block->to(torch::kCUDA);
  auto y_gpu = block->forward(x.cuda()).cpu();
  EXPECT_TRUE(torch::allclose(y_gpu, y_cpu, 1e-9, 1e-9));
}

}  // namespace
