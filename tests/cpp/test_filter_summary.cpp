// The FSNet C++ API: both paths against the dense conv, backward, quantisation, state_dict names, CUDA.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <sstream>
#include <string>

#include "leanconv/leanconv.h"

namespace {

using leanconv::nn::FilterSummaryConv2d;
using leanconv::nn::FilterSummaryConv2dOptions;

TEST(FilterSummary, BothPathsEqualTheDenseConv) {
  torch::manual_seed(0);
  for (const std::string path : {"direct", "gather"}) {
    FilterSummaryConv2d layer(FilterSummaryConv2dOptions(18, 12, 3).stride(2).padding(1).compression(9).path(path));
    layer->to(torch::kDouble);
    auto x = torch::randn({2, 18, 9, 9}, torch::kDouble);
    auto expected = torch::conv2d(x, layer->weight(), layer->bias, 2, 1);
    EXPECT_TRUE(torch::allclose(layer->forward(x), expected, 1e-10, 1e-10)) << path;
  }
}

TEST(FilterSummary, WeightFollowsTheLayout) {
  FilterSummaryConv2d layer(FilterSummaryConv2dOptions(3, 4, 3).compression(9).bias(false));
  const int64_t s = layer->summary_stride(), L = layer->summary.numel();
  ASSERT_EQ(s, 3);
  auto w = layer->weight().detach();
  auto f = layer->summary.detach();
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j)
          EXPECT_EQ(w[o][c][i][j].item<float>(), f[(o * s + (i * 3 + j) * 3 + c) % L].item<float>());
}

TEST(FilterSummary, DirectAndGatherGradientsAgree) {
  torch::manual_seed(1);
  FilterSummaryConv2d direct(FilterSummaryConv2dOptions(8, 8, 3).padding(1).path("direct"));
  FilterSummaryConv2d gather(FilterSummaryConv2dOptions(8, 8, 3).padding(1).path("gather"));
  {
    torch::NoGradGuard no_grad;
    gather->summary.copy_(direct->summary);
    gather->bias.copy_(direct->bias);
  }
  auto x = torch::randn({2, 8, 6, 6});
  direct->forward(x).square().sum().backward();
  gather->forward(x).square().sum().backward();
  EXPECT_TRUE(torch::allclose(direct->summary.grad(), gather->summary.grad(), 1e-4, 1e-5));
}

TEST(FilterSummary, QuantisedSummaryHasFewLevels) {
  FilterSummaryConv2d layer(FilterSummaryConv2dOptions(8, 8, 3).quant_bits(3));
  auto levels = std::get<0>(torch::_unique(layer->effective_summary().detach()));
  EXPECT_LE(levels.numel(), 7);
}

TEST(FilterSummary, StateDictNamesAndCounts) {
  FilterSummaryConv2d layer(FilterSummaryConv2dOptions(64, 32, 3));
  std::set<std::string> names;
  for (const auto& item : layer->named_parameters()) names.insert(item.key());
  for (const auto& item : layer->named_buffers()) names.insert(item.key());
  EXPECT_EQ(names, (std::set<std::string>{"summary", "bias", "quant_scale", "quant_bits", "summary_layout"}));
  EXPECT_EQ(layer->num_learned_params(), 32 * 64 + 32);
  EXPECT_EQ(layer->num_dense_params(), 32 * 64 * 9 + 32);
  EXPECT_TRUE(layer->uses_direct_path());
}

TEST(FilterSummary, CheckpointOfAnotherBitWidthIsRefused) {
  std::stringstream four_bits, unquantised;
  torch::save(FilterSummaryConv2d(FilterSummaryConv2dOptions(8, 8, 3).quant_bits(4)), four_bits);
  torch::save(FilterSummaryConv2d(FilterSummaryConv2dOptions(8, 8, 3)), unquantised);
  FilterSummaryConv2d eight_bits(FilterSummaryConv2dOptions(8, 8, 3).quant_bits(8));
  EXPECT_THROW(torch::load(eight_bits, four_bits), c10::Error);
  FilterSummaryConv2d plain(FilterSummaryConv2dOptions(8, 8, 3));
  four_bits.seekg(0);
  EXPECT_THROW(torch::load(plain, four_bits), c10::Error);
  torch::load(plain, unquantised);  // the same width loads
}

TEST(FilterSummary, CheckpointOfAnotherSummaryLayoutIsRefused) {
  // Three layers whose summaries have 256 elements (C_out * s), each read into other filters.
  const auto three_by_three = FilterSummaryConv2dOptions(16, 16, 3).bias(false);
  std::stringstream saved;
  torch::save(FilterSummaryConv2d(three_by_three), saved);
  FilterSummaryConv2d pointwise(FilterSummaryConv2dOptions(144, 16, 1).bias(false));
  EXPECT_THROW(torch::load(pointwise, saved), c10::Error);
  saved.seekg(0);
  FilterSummaryConv2d wider(FilterSummaryConv2dOptions(32, 16, 3).bias(false).compression(18));
  EXPECT_THROW(torch::load(wider, saved), c10::Error);
  saved.seekg(0);
  FilterSummaryConv2d same(three_by_three);
  torch::load(same, saved);  // the same layout loads
}

TEST(FilterSummary, ClearErrors) {
  EXPECT_THROW(FilterSummaryConv2d(FilterSummaryConv2dOptions(2, 4, 1).compression(3)), c10::Error);
  EXPECT_THROW(FilterSummaryConv2d(FilterSummaryConv2dOptions(8, 4, 3).compression(0.5)), c10::Error);
  EXPECT_THROW(FilterSummaryConv2d(FilterSummaryConv2dOptions(4, 4, 3).quant_bits(9)), c10::Error);
  EXPECT_THROW(FilterSummaryConv2d(FilterSummaryConv2dOptions(4, 4, 3).compression(7).path("direct")), c10::Error);
  FilterSummaryConv2d layer(FilterSummaryConv2dOptions(4, 4, 3));
  EXPECT_THROW(layer->forward(torch::randn({1, 3, 8, 8})), c10::Error);
}

TEST(FilterSummary, CpuAndCudaAgree_CUDA) {
  torch::manual_seed(2);
  for (const std::string path : {"direct", "gather"}) {
    FilterSummaryConv2d layer(FilterSummaryConv2dOptions(32, 16, 3).padding(1).path(path));
    auto x = torch::randn({2, 32, 8, 8});
    auto cpu_out = layer->forward(x);
    cpu_out.sum().backward();
    auto cpu_grad = layer->summary.grad().clone();
    layer->summary.mutable_grad() = torch::Tensor();
    layer->to(torch::kCUDA);
    auto cuda_out = layer->forward(x.cuda());
    cuda_out.sum().backward();
    EXPECT_TRUE(torch::allclose(cuda_out.cpu(), cpu_out, 1e-4, 1e-4)) << path;
    EXPECT_TRUE(torch::allclose(layer->summary.grad().cpu(), cpu_grad, 1e-3, 1e-3)) << path;
  }
}

}  // namespace
